import Logging
import ServiceLifecycle

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Loads the ProxyConfig JSON file and polls it (`FileStamp`: inode, size and modification time); a changed file
/// that decodes and compiles replaces the served config, one that does not is rejected and the old config keeps
/// serving.
public final class ConfigFileWatcher: Service {
    private let path: String
    private let store: ProxyStateStore
    private let interval: Duration
    private let metrics: ProxyMetrics?
    private let logger: Logger

    public init(
        path: String, store: ProxyStateStore, metrics: ProxyMetrics? = nil, interval: Duration = .milliseconds(500),
        logger: Logger
    ) {
        self.path = path
        self.store = store
        self.metrics = metrics
        self.interval = interval
        self.logger = logger
    }

    /// Reads, decodes and compiles the file; installs it on success. Returns whether it was installed.
    @discardableResult
    public func reload() -> Bool {
        let installer = ConfigInstaller(store: self.store, metrics: self.metrics, logger: self.logger)
        do {
            let data = try Data(contentsOf: URL(filePath: self.path))
            return (try? installer.install(data, source: self.path).get()) != nil
        } catch {
            self.metrics?.lifecycle.configRejected()
            self.logger.error(
                "config rejected; keeping the previous config",
                metadata: [
                    "config.source": "\(self.path)", "error": "\(error)",
                    "config.serving_version": "\(self.store.current?.config.version ?? "none")",
                ])
            return false
        }
    }

    public func run() async throws {
        var last = FileStamp(path: self.path)
        if self.store.current == nil {
            self.reload()
        }
        while !Task.isShuttingDownGracefully {
            do {
                try await Task.sleep(for: self.interval)
            } catch {
                return
            }
            let now = FileStamp(path: self.path)
            if now != last, now != nil {
                last = now
                self.reload()
            }
        }
    }
}
