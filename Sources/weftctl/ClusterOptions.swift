import ArgumentParser
import Foundation
import KubeClient
import KubeModel
import Logging

/// `--kubeconfig` and `--context`, as kubectl reads them: the flag, else `$KUBECONFIG` (its first file), else
/// `~/.kube/config`, else the pod's ServiceAccount when weftctl runs in a cluster.
struct ClusterOptions: ParsableArguments {
    @Option(help: "The kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).")
    var kubeconfig: String?

    @Option(help: "The kubeconfig context to use instead of its current-context.")
    var context: String?

    @Option(help: "Seconds each API request may take.")
    var requestTimeout: Int = 30

    /// Runs `body` with a client of the cluster; a configuration that cannot be loaded is a `ValidationError`
    /// naming what was tried.
    func withClient<T: Sendable>(_ body: (KubeClient) async throws -> T) async throws -> T {
        let configuration: KubeConfiguration
        do {
            configuration = try KubeConfiguration.load(kubeconfig: self.kubeconfig, context: self.context)
        } catch let error as KubeClientError {
            throw ValidationError(error.message)
        }
        var logger = Logger(label: "weftctl.kube")
        logger.logLevel = .critical
        let client = try KubeClient(
            configuration: configuration, logger: logger, requestTimeout: .seconds(self.requestTimeout))
        do {
            let result = try await body(client)
            try? await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

extension KubeClient {
    /// The JSON of `GET path`, or nil when the API server answers 404.
    func getJSONIfPresent(_ path: String) async throws -> JSONValue? {
        do {
            return try JSONParser.parse(try await self.getRaw(path))
        } catch let error as KubeClientError where error.isNotFound {
            return nil
        }
    }

    /// The `items` of a raw list (kinds without a model here), every page.
    func listJSON(_ path: String, labelSelector: String? = nil) async throws -> [JSONValue] {
        var items: [JSONValue] = []
        var next: String?
        repeat {
            var query: [(name: String, value: String)] = [("limit", "500")]
            if let labelSelector { query.append(("labelSelector", labelSelector)) }
            if let next { query.append(("continue", next)) }
            let page = try JSONParser.parse(try await self.getRaw(path, query: query))
            items += page["items"]?.arrayValue ?? []
            next = page["metadata"]?["continue"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        } while next != nil
        return items
    }
}

/// Where `weftctl proxy-status` and `proxy-config` read the controller's HTTP API (port 15014): `--controller URL`
/// when given; else, when a cluster is configured (as `ClusterOptions` finds it), the `weft-controller` Service
/// through the API server's service proxy (`kubectl get --raw`'s way: no port-forward, the user's own
/// credentials); else `http://127.0.0.1:15014`, a controller on this machine (manifests mode).
struct ControllerOptions: ParsableArguments {
    static let local = "http://127.0.0.1:15014"

    @Option(
        help: """
            The controller's HTTP address (e.g. http://127.0.0.1:15014). Default: the weft-controller Service \
            through the API server when a cluster is configured, else http://127.0.0.1:15014.
            """)
    var controller: String?

    @Option(help: "The control plane's namespace, where the weft-controller Service runs.")
    var controllerNamespace: String = "weft-system"

    @OptionGroup var cluster: ClusterOptions

    /// GET `path` (e.g. `/proxies`) from the controller; a failure prints `error: ...` on stderr and exits 1.
    func get(_ path: String) async throws -> [UInt8] {
        if let controller = self.controller {
            return try await httpGet(controller, path)
        }
        let explicit = self.cluster.kubeconfig != nil || self.cluster.context != nil
        guard explicit || (try? KubeConfiguration.load(kubeconfig: nil, context: nil)) != nil else {
            return try await httpGet(Self.local, path)
        }
        let proxyPath =
            "/api/v1/namespaces/\(self.controllerNamespace)/services/http:weft-controller:http-monitoring/proxy\(path)"
        do {
            return try await self.cluster.withClient { client in try await client.getRaw(proxyPath) }
        } catch let error as ValidationError {
            throw error
        } catch {
            FileHandle.standardError.write(
                Data(
                    """
                    error: \(error)
                    hint: is weft-controller running in \(self.controllerNamespace)? (weftctl check); or pass \
                    --controller http://127.0.0.1:15014 with kubectl -n \(self.controllerNamespace) port-forward \
                    deploy/weft-controller 15014

                    """.utf8))
            throw ExitCode(1)
        }
    }
}
