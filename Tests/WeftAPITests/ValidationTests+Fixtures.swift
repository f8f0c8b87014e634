import Foundation
import KubeModel
import Testing
import WeftAPI
import Yams

typealias VirtualService = weft.v1alpha1.VirtualService
typealias DestinationPolicy = weft.v1alpha1.DestinationPolicy
typealias MeshTLSPolicy = weft.v1alpha1.MeshTLSPolicy
typealias AuthorizationPolicy = weft.v1alpha1.AuthorizationPolicy

/// The shop example resources of manifests/examples/40-routing.yaml and 50-security.yaml, built in Swift.
enum Shop {
    static func catalogVirtualService() -> VirtualService {
        var resource = VirtualService()
        resource.metadata.name = "catalog"
        resource.metadata.namespace = "shop"
        resource.spec.hosts = ["catalog"]

        var beta = weft.v1alpha1.HTTPRoute()
        beta.name = "beta-users"
        var match = weft.v1alpha1.HTTPMatchRequest()
        match.uri = .init(prefix: "/api")
        match.headers = ["x-beta": .init(exact: "1")]
        beta.match = [match]
        beta.route = [.init(destination: .init(host: "catalog", subset: "v2", port: .init(number: 80)))]

        var split = weft.v1alpha1.HTTPRoute()
        split.name = "default"
        split.route = [
            .init(destination: .init(host: "catalog", subset: "v1", port: .init(number: 80)), weight: 90),
            .init(destination: .init(host: "catalog", subset: "v2", port: .init(number: 80)), weight: 10),
        ]
        split.timeout = "2s"
        var retries = weft.v1alpha1.HTTPRetry(attempts: 2)
        retries.perTryTimeout = "500ms"
        retries.retryOn = "5xx,reset,connect-failure"
        split.retries = retries

        resource.spec.http = [beta, split]
        resource.spec.tcp = [.init(route: [.init(destination: .init(host: "catalog", port: .init(number: 9000)))])]
        return resource
    }

    static func paymentsVirtualService() -> VirtualService {
        var resource = VirtualService()
        resource.metadata.name = "payments"
        resource.metadata.namespace = "shop"
        resource.spec.hosts = ["payments"]

        var grpc = weft.v1alpha1.HTTPRoute()
        grpc.name = "grpc"
        var match = weft.v1alpha1.HTTPMatchRequest()
        match.uri = .init(prefix: "/payments.v1.Payments/")
        grpc.match = [match]
        grpc.route = [.init(destination: .init(host: "payments", port: .init(number: 9090)))]
        grpc.timeout = "3s"

        var rest = weft.v1alpha1.HTTPRoute()
        rest.name = "default"
        rest.route = [.init(destination: .init(host: "payments", port: .init(number: 8080)))]
        rest.timeout = "3s"
        var retries = weft.v1alpha1.HTTPRetry(attempts: 3)
        retries.perTryTimeout = "1s"
        retries.retryOn = "gateway-error,connect-failure"
        rest.retries = retries

        resource.spec.http = [grpc, rest]
        return resource
    }

    static func catalogDestinationPolicy() -> DestinationPolicy {
        var resource = DestinationPolicy()
        resource.metadata.name = "catalog"
        resource.metadata.namespace = "shop"
        resource.spec.host = "catalog"
        var policy = weft.v1alpha1.TrafficPolicy()
        policy.loadBalancer = .init(simple: "LEAST_REQUEST")
        var pool = weft.v1alpha1.ConnectionPoolSettings()
        pool.maxConnections = 100
        pool.maxPendingRequests = 64
        policy.connectionPool = pool
        var outlier = weft.v1alpha1.OutlierDetection()
        outlier.consecutive5xxErrors = 5
        outlier.interval = "10s"
        outlier.baseEjectionTime = "30s"
        outlier.maxEjectionPercent = 50
        policy.outlierDetection = outlier
        resource.spec.trafficPolicy = policy
        resource.spec.subsets = [
            .init(name: "v1", labels: ["version": "v1"]),
            .init(name: "v2", labels: ["version": "v2"]),
        ]
        return resource
    }

    static func paymentsDestinationPolicy() -> DestinationPolicy {
        var resource = DestinationPolicy()
        resource.metadata.name = "payments"
        resource.metadata.namespace = "shop"
        resource.spec.host = "payments"
        var policy = weft.v1alpha1.TrafficPolicy()
        var hash = weft.v1alpha1.ConsistentHash()
        hash.httpHeaderName = "x-user"
        policy.loadBalancer = .init(consistentHash: hash)
        policy.retryBudget = .init(percent: 20, minRetriesPerSecond: 10)
        resource.spec.trafficPolicy = policy
        return resource
    }

    static func meshDefaultTLS() -> MeshTLSPolicy {
        var resource = MeshTLSPolicy()
        resource.metadata.name = "mesh-default"
        resource.metadata.namespace = weft.v1alpha1.rootNamespace
        resource.spec.mode = "PERMISSIVE"
        return resource
    }

    static func shopTLS() -> MeshTLSPolicy {
        var resource = MeshTLSPolicy()
        resource.metadata.name = "default"
        resource.metadata.namespace = "shop"
        resource.spec.mode = "STRICT"
        return resource
    }

    static func paymentsAllowFrontend() -> AuthorizationPolicy {
        var resource = AuthorizationPolicy()
        resource.metadata.name = "payments-allow-frontend"
        resource.metadata.namespace = "shop"
        resource.spec.selector = .init(matchLabels: ["app": "payments"])
        resource.spec.action = "ALLOW"
        var source = weft.v1alpha1.AuthorizationSource()
        source.principals = ["spiffe://cluster.local/ns/shop/sa/frontend"]
        var operation = weft.v1alpha1.AuthorizationOperation()
        operation.methods = ["GET", "POST"]
        operation.paths = ["/pay/*", "/payments.v1.Payments/*"]
        operation.ports = [8080, 9090]
        resource.spec.rules = [.init(from: [source], to: [operation])]
        return resource
    }

    static func denyDebug() -> AuthorizationPolicy {
        var resource = AuthorizationPolicy()
        resource.metadata.name = "deny-debug"
        resource.metadata.namespace = "shop"
        resource.spec.selector = .init(matchLabels: ["app": "catalog"])
        resource.spec.action = "DENY"
        var operation = weft.v1alpha1.AuthorizationOperation()
        operation.paths = ["/debug/*"]
        resource.spec.rules = [.init(to: [operation])]
        return resource
    }
}

/// One validation case: an edit of a valid resource and the exact errors it must produce.
struct ValidationCase<Resource: Sendable>: Sendable, CustomTestStringConvertible {
    let label: String
    let edit: @Sendable (inout Resource) -> Void
    let expected: [FieldError]

    init(_ label: String, _ expected: [FieldError], _ edit: @escaping @Sendable (inout Resource) -> Void) {
        self.label = label
        self.expected = expected
        self.edit = edit
    }

    init(_ label: String, _ path: String, _ message: String, _ edit: @escaping @Sendable (inout Resource) -> Void) {
        self.init(label, [FieldError(path, message)], edit)
    }

    func apply(to resource: Resource) -> Resource {
        var resource = resource
        self.edit(&resource)
        return resource
    }

    var testDescription: String { self.label }
}

/// The resources of a file in manifests/examples, decoded with Yams, to check that `Shop` matches them.
enum ExampleFiles {
    static func documents(_ name: String) throws -> [String] {
        let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let url = testsDirectory.appendingPathComponent("../../manifests/examples/\(name)").standardized
        let text = try String(contentsOf: url, encoding: .utf8)
        return text.components(separatedBy: "\n---\n")
    }

    static func decode<Resource: Decodable>(_ type: Resource.Type, _ document: String) throws -> Resource {
        try YAMLDecoder().decode(type, from: document)
    }
}
