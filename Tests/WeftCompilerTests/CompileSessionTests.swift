import KubeModel
import ProxyConfig
import Testing
import WeftAPI
import WeftCompiler
import WeftTesting

/// A session reuses work between compiles; whatever it reuses, its result must equal a fresh compile's.
@Suite("Incremental compile session")
struct CompileSessionTests {
    static let cluster = SyntheticCluster(
        namespaces: 4, services: 24, pods: 72, virtualServices: 12,
        destinationPolicies: 6)

    /// A sequence of edits of every kind the session treats differently.
    static let edits: [(String, @Sendable (inout WeftSnapshot) -> Void)] = [
        ("nothing changes", { _ in }),
        ("a VirtualService changes its timeout", { $0.virtualServices[3] = cluster.virtualService(3, timeout: "9s") }),
        ("a VirtualService is removed", { $0.virtualServices.removeLast() }),
        (
            "a VirtualService is added for a Service that had none",
            {
                $0.virtualServices.append(cluster.virtualService(20, timeout: "1s"))
            }
        ),
        (
            "a consumer namespace overrides a producer VirtualService",
            {
                var vs = cluster.virtualService(1, timeout: "4s")
                vs.metadata.namespace = "ns-0"
                vs.spec.hosts = ["svc-1.ns-1"]
                vs.spec.http?[0].route = [.init(destination: .init(host: "svc-1.ns-1"))]
                vs.spec.http = [vs.spec.http?[0]].compactMap { $0 }
                $0.virtualServices.append(vs)
            }
        ),
        (
            "a DestinationPolicy changes its load balancer",
            {
                $0.destinationPolicies[2].spec.trafficPolicy?.loadBalancer = .init(simple: "RANDOM")
            }
        ),
        (
            "a pod becomes not ready",
            {
                $0.endpointSlices[5].endpoints?[0].conditions = .init(ready: false, serving: false, terminating: true)
            }
        ),
        ("a pod's labels change", { $0.pods[7].metadata.labels?["version"] = "v3" }),
        (
            "a MeshTLSPolicy disables mTLS in one namespace",
            {
                var policy = weft.v1alpha1.MeshTLSPolicy()
                policy.metadata.namespace = "ns-2"
                policy.metadata.name = "off"
                policy.spec.mode = "DISABLE"
                $0.meshTLSPolicies.append(policy)
            }
        ),
        (
            "an AuthorizationPolicy denies a path",
            {
                var policy = weft.v1alpha1.AuthorizationPolicy()
                policy.metadata.namespace = "ns-1"
                policy.metadata.name = "deny"
                policy.spec.action = "DENY"
                var operation = weft.v1alpha1.AuthorizationOperation()
                operation.paths = ["/admin/*"]
                policy.spec.rules = [.init(to: [operation])]
                $0.authorizationPolicies.append(policy)
            }
        ),
        (
            "a Service gains a port",
            {
                var port = core.v1.ServicePort()
                port.name = "grpc"
                port.port = 9090
                $0.services[4].spec?.ports?.append(port)
            }
        ),
        ("the trust domain changes", { $0.settings.trustDomain = "example.org" }),
        ("a namespace leaves the mesh", { $0.namespaces[3].metadata.labels = [:] }),
        ("a VirtualService becomes invalid", { $0.virtualServices[0].spec.http?[1].route?[0].weight = 50 }),
    ]

    @Test("a session's result equals a fresh compile after every edit")
    func sessionMatchesFreshCompile() {
        var snapshot = Self.cluster.snapshot()
        var session = WeftCompiler().session()
        #expect(session.compile(snapshot) == WeftCompiler().compile(snapshot))
        for (name, edit) in Self.edits {
            edit(&snapshot)
            let incremental = session.compile(snapshot)
            let fresh = WeftCompiler().compile(snapshot)
            #expect(incremental == fresh, "after: \(name)")
        }
    }

    @Test("only proxies whose config changed get a new version")
    func versionsChangeOnlyWhereContentChanged() {
        var snapshot = Self.cluster.snapshot()
        var session = WeftCompiler().session()
        let before = session.compile(snapshot)
        // A namespace-local AuthorizationPolicy changes only the inbound config of the pods it selects.
        var policy = weft.v1alpha1.AuthorizationPolicy()
        policy.metadata.namespace = "ns-1"
        policy.metadata.name = "svc-1-only"
        policy.spec.selector = .init(matchLabels: ["app": "svc-1"])
        policy.spec.rules = [.init()]
        snapshot.authorizationPolicies.append(policy)
        let after = session.compile(snapshot)
        let changed = after.proxies.filter { before.proxies[$0.key]?.version != $0.value.version }.keys.sorted()
        #expect(changed == ["ns-1/svc-1-0", "ns-1/svc-1-1", "ns-1/svc-1-2"])
        #expect(session.compile(snapshot).proxies.mapValues(\.version) == after.proxies.mapValues(\.version))
    }
}
