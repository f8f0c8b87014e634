import Foundation
import Logging

/// Installs a config from any source (the config file, the controller's push stream) the same way: decode,
/// compile, swap it in whole. A config that does not decode or compile is refused and the one serving stays.
public struct ConfigInstaller: Sendable {
    public let store: ProxyStateStore
    let metrics: ProxyMetrics?
    let logger: Logger

    public init(store: ProxyStateStore, metrics: ProxyMetrics? = nil, logger: Logger) {
        self.store = store
        self.metrics = metrics
        self.logger = logger
    }

    /// Decodes, compiles and installs `data`; `source` names where it came from in the logs. `check` may refuse
    /// a config that compiles (say, one for another workload) by throwing.
    @discardableResult
    public func install(
        _ data: Data, source: String, check: (ProxyState) throws -> Void = { _ in }
    ) -> Result<ProxyState, any Error> {
        do {
            let state = try ProxyState.load(data)
            try check(state)
            let previous = self.store.current?.config.version
            self.store.replace(with: state)
            self.metrics?.lifecycle.configLoaded(state.config, at: Date().timeIntervalSince1970)
            self.logger.info(
                "config loaded",
                metadata: [
                    "config.source": "\(source)", "config.version": "\(state.config.version)",
                    "config.previous_version": "\(previous ?? "none")",
                ])
            return .success(state)
        } catch {
            self.metrics?.lifecycle.configRejected()
            self.logger.error(
                "config rejected; keeping the previous config",
                metadata: [
                    "config.source": "\(source)", "error": "\(error)",
                    "config.serving_version": "\(self.store.current?.config.version ?? "none")",
                ])
            return .failure(error)
        }
    }
}
