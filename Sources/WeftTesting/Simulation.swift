import Foundation
import KubeModel
import ProxyConfig
import WeftCompiler
import WeftManifests

/// Sends requests through a compiled proxy config with the proxy's own matcher (Istio's simulation tests):
/// `#expect(try sim.call(from: "shop/frontend-x", to: "catalog", path: "/api").cluster == "outbound|80|v2|...")`.
public struct Simulation {
    public let result: CompileResult
    public let problems: [ManifestProblem]

    /// Compiles manifests given as YAML text.
    public init(yaml: String) {
        let loaded = ManifestLoader().load(text: yaml, file: "simulation.yaml")
        self.problems = loaded.problems
        self.result = WeftCompiler().compile(loaded.snapshot)
    }

    /// Compiles a manifest file or folder.
    public init(path: String) {
        let loaded = ManifestLoader().load(path: path)
        self.problems = loaded.problems
        self.result = WeftCompiler().compile(loaded.snapshot)
    }

    public struct Outcome: Sendable {
        /// The route that matched, nil when none did.
        public var route: String?
        /// The cluster chosen for `roll`, nil for redirects and when nothing matched.
        public var cluster: String?
        public var redirect: RedirectAction?
        public var forward: ForwardAction?
        /// Every cluster with its weight.
        public var backends: [String: Int]
    }

    public struct SimulationError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Sends one request from a proxy. `roll` (0..<total weight) picks among weighted backends.
    public func call(
        from proxy: String, to authority: String, method: String = "GET", path: String = "/",
        headers: [(name: String, value: String)] = [], roll: Int = 0
    ) throws -> Outcome {
        guard let config = self.result.proxies[proxy] else {
            throw SimulationError(description: "no proxy \(proxy); proxies: \(self.result.proxies.keys.sorted())")
        }
        let table = try RouteTable(config)
        let request = RequestInfo(authority: authority, method: method, path: path, headers: headers)
        guard let match = table.match(request) else {
            return Outcome(route: nil, cluster: nil, redirect: nil, forward: nil, backends: [:])
        }
        let forward = match.route.forward
        var backends: [String: Int] = [:]
        for backend in forward?.backends ?? [] { backends[backend.cluster, default: 0] += backend.weight }
        return Outcome(
            route: match.route.name, cluster: forward?.pickBackend(roll: roll)?.cluster,
            redirect: match.route.redirect, forward: forward, backends: backends)
    }

    /// Asks a proxy's inbound authorization whether a call is allowed.
    public func authorize(
        at proxy: String, port: Int, principal: String?, method: String = "GET", path: String = "/"
    )
        throws -> AuthorizationDecision
    {
        guard let config = self.result.proxies[proxy] else {
            throw SimulationError(description: "no proxy \(proxy)")
        }
        guard let inbound = config.inbound.first(where: { $0.port == port }) else {
            throw SimulationError(description: "proxy \(proxy) has no inbound port \(port)")
        }
        return inbound.authorization.evaluate(
            AuthorizationRequest(principal: principal, method: method, path: path, port: port))
    }
}
