import Logging
import ProxyConfig

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Installs a config from any source (the config file, the controller's push stream) the same way: decode,
/// compile, swap it in whole. A config that does not decode or compile is refused and the one serving stays. A
/// delta from the push stream is applied to the config serving, and the result installed the same way.
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
        self.install(source: source, check: check) { try ProxyState.load(data) }
    }

    /// Applies `delta` to the config serving, then compiles and installs the result like a whole config.
    @discardableResult
    public func install(
        _ delta: ProxyConfigDelta, source: String, check: (ProxyState) throws -> Void = { _ in }
    ) -> Result<ProxyState, any Error> {
        self.install(source: source, check: check) {
            guard let current = self.store.current else {
                throw ProxyConfigError(code: "delta_base", message: "a delta, but the proxy runs no config")
            }
            let config = try delta.applied(to: current.config)
            return try ProxyState(config: config, json: nil, previous: current)
        }
    }

    private func install(
        source: String, check: (ProxyState) throws -> Void, make: () throws -> ProxyState
    ) -> Result<ProxyState, any Error> {
        do {
            let state = try make()
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
