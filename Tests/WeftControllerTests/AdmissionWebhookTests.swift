import AsyncHTTPClient
import Foundation
import KubeModel
import Logging
import NIOCore
import NIOSSL
import Synchronization
import Testing
import WeftAPI
import WeftCompiler
import WeftController
import WeftIdentity

/// The admission webhooks through the real HTTPS server on 127.0.0.1 (a free port), with a certificate from
/// the mesh CA that AsyncHTTPClient verifies against the CA's trust bundle.
@Suite("Admission webhooks over HTTPS")
struct AdmissionWebhookTests {
    static let logger = Logger(label: "test.webhook")
    static let domain = try! TrustDomain("cluster.local")

    static func meshCA(now: @escaping @Sendable () -> Date = { Date() }, lifetime: TimeInterval = 3600) throws -> MeshCA
    {
        let secret = try CertificateAuthority.generateRoot(trustDomain: domain, now: Date(), serialNumbers: .random)
        let authority = try CertificateAuthority(secret: secret, trustDomain: domain, serialNumbers: .random)
        return MeshCA(authority: authority, rootNamespace: "weft-system", svidLifetime: lifetime, now: now)
    }

    static let context = AdmissionReviewer.Context(
        injectionSettings: { InjectionSettings() },
        namespaceLabels: { $0 == "shop" ? ["weft.dev/inject": "enabled"] : [:] },
        snapshot: { WeftSnapshot(namespaces: [.new(name: "shop")]) })

    /// Runs the server and a client that trusts only the mesh CA; `body` gets a POST function.
    func withWebhook(
        _ body: (_ post: @Sendable (String, [UInt8]) async throws -> (Int, String?, [UInt8])) async throws -> Void
    ) async throws {
        let ca = try Self.meshCA()
        let tls = try WebhookTLS(
            .meshCA(ca, hosts: WebhookTLS.serviceHosts(rootNamespace: "weft-system") + ["127.0.0.1"]))
        let server = AdmissionWebhookServer(
            host: "127.0.0.1", port: 0, tls: tls,
            reviewer: AdmissionReviewer(context: Self.context, logger: Self.logger), logger: Self.logger)
        var clientTLS = TLSConfiguration.makeClientConfiguration()
        clientTLS.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(try ca.trustBundlePEM.utf8)))
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: clientTLS))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            defer { group.cancelAll() }
            let port = try await webhookPort { server.listeningPort }
            let post: @Sendable (String, [UInt8]) async throws -> (Int, String?, [UInt8]) = { path, bytes in
                var request = HTTPClientRequest(url: "https://127.0.0.1:\(port)\(path)")
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: bytes))
                let response = try await client.execute(request, timeout: .seconds(30))
                let body = try await response.body.collect(upTo: 8 << 20)
                return (Int(response.status.code), response.headers.first(name: "x-weft-reason"), Array(buffer: body))
            }
            do {
                try await body(post)
            } catch {
                try await client.shutdown()
                throw error
            }
            try await client.shutdown()
        }
    }

    static func review(
        uid: String, kind: admission.v1.GroupVersionKind, resource: String, namespace: String, object: JSONValue
    )
        throws -> [UInt8]
    {
        let request = admission.v1.AdmissionRequest(
            uid: uid, kind: kind,
            resource: .init(group: kind.group, version: kind.version, resource: resource), operation: "CREATE",
            namespace: namespace, object: object)
        return Array(try JSONEncoder().encode(admission.v1.AdmissionReview(request: request)))
    }

    static func response(_ body: [UInt8]) throws -> admission.v1.AdmissionResponse {
        let review = try JSONValueDecoder().decode(admission.v1.AdmissionReview.self, from: try JSONParser.parse(body))
        #expect(review.apiVersion == "admission.k8s.io/v1" && review.kind == "AdmissionReview")
        return try #require(review.response)
    }

    static let pod: JSONValue = [
        "apiVersion": "v1", "kind": "Pod",
        "metadata": ["generateName": "catalog-6d8f7b9c4-", "labels": ["app": "catalog"]],
        "spec": ["containers": [["name": "catalog", "image": "example.com/catalog:1"]]],
    ]

    @Test("/inject answers a base64 JSONPatch for a pod in an injected namespace, echoing the uid")
    func injectsAPod() async throws {
        try await self.withWebhook { post in
            let body = try Self.review(
                uid: "4b0e5d1c-0001", kind: .init(group: "", version: "v1", kind: "Pod"), resource: "pods",
                namespace: "shop", object: Self.pod)
            let (status, _, answer) = try await post("/inject", body)
            #expect(status == 200)
            let response = try Self.response(answer)
            #expect(response.uid == "4b0e5d1c-0001")
            #expect(response.allowed)
            #expect(response.patchType == "JSONPatch")
            let encoded = try #require(response.patch)
            let patch = try #require(Data(base64Encoded: encoded))
            let expected = try Injector.inject(
                object: Self.pod, namespace: "shop", namespaceLabels: ["weft.dev/inject": "enabled"],
                settings: InjectionSettings())
            #expect(try JSONParser.parse(patch) == expected.patch.json)
            #expect(!expected.patch.isEmpty)

            // Outside the mesh: allowed, no patch.
            let other = try Self.review(
                uid: "u2", kind: .init(group: "", version: "v1", kind: "Pod"), resource: "pods", namespace: "default",
                object: Self.pod)
            let plain = try Self.response(try await post("/inject", other).2)
            #expect(plain.uid == "u2" && plain.allowed && plain.patch == nil && plain.patchType == nil)
        }
    }

    @Test("a pod that cannot be injected is refused with the field, not crashed on")
    func refusesABadPod() async throws {
        try await self.withWebhook { post in
            var pod = Self.pod
            if case .object(var members) = pod {
                members["metadata"] = ["name": "p", "annotations": ["weft.dev/proxy-cpu": "lots"]]
                pod = .object(members)
            }
            let body = try Self.review(
                uid: "u3", kind: .init(group: "", version: "v1", kind: "Pod"), resource: "pods", namespace: "shop",
                object: pod)
            let response = try Self.response(try await post("/inject", body).2)
            #expect(response.uid == "u3" && !response.allowed)
            #expect(response.status?.message?.contains("metadata.annotations[weft.dev/proxy-cpu]") == true)

            let nameless = try Self.review(
                uid: "u4", kind: .init(group: "", version: "v1", kind: "Pod"), resource: "pods", namespace: "shop",
                object: ["metadata": [:], "spec": ["containers": [["image": "x"]]]])
            let refused = try Self.response(try await post("/inject", nameless).2)
            #expect(!refused.allowed && refused.status?.message == "weft injection: spec.containers[0].name: required")
        }
    }

    @Test(
        "a malformed AdmissionReview gets 400 with a reason",
        arguments: [
            "not json", "[]", #"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#,
            #"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}"#,
            #"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}}"#,
        ])
    func malformed(_ text: String) async throws {
        try await self.withWebhook { post in
            for path in ["/inject", "/validate"] {
                let (status, reason, body) = try await post(path, Array(text.utf8))
                #expect(status == 400)
                #expect(reason == "malformed_admission_review")
                #expect(!String(decoding: body, as: UTF8.self).isEmpty)
            }
            #expect(try await post("/nowhere", []).0 == 404)
        }
    }

    @Test("/validate refuses an invalid VirtualService with the field paths weftctl analyze prints")
    func validates() async throws {
        try await self.withWebhook { post in
            let vs: JSONValue = [
                "apiVersion": "weft.dev/v1alpha1", "kind": "VirtualService",
                "metadata": ["name": "catalog", "namespace": "shop"],
                "spec": [
                    "hosts": ["Catalog!"], "http": [["route": [["destination": ["host": "catalog"], "weight": 50]]]],
                ],
            ]
            let typed = try JSONValueDecoder().decode(weft.v1alpha1.VirtualService.self, from: vs)
            let errors = typed.validate().map(\.description)
            try #require(!errors.isEmpty)
            let kind = admission.v1.GroupVersionKind(group: "weft.dev", version: "v1alpha1", kind: "VirtualService")
            let body = try Self.review(
                uid: "v1", kind: kind, resource: "virtualservices", namespace: "shop", object: vs)
            let response = try Self.response(try await post("/validate", body).2)
            #expect(response.uid == "v1" && !response.allowed)
            #expect(response.status?.code == 422 && response.status?.reason == "Invalid")
            #expect(
                response.status?.message
                    == "VirtualService shop/catalog is invalid: " + errors.joined(separator: "; "))

            // A legal policy that selects nothing: allowed, with the compiler's warning.
            let policy: JSONValue = [
                "apiVersion": "weft.dev/v1alpha1", "kind": "AuthorizationPolicy",
                "metadata": ["name": "payments", "namespace": "shop"],
                "spec": ["selector": ["matchLabels": ["app": "payments"]], "action": "ALLOW", "rules": [[:]]],
            ]
            let allowed = try Self.response(
                try await post(
                    "/validate",
                    try Self.review(
                        uid: "v2", kind: .init(group: "weft.dev", version: "v1alpha1", kind: "AuthorizationPolicy"),
                        resource: "authorizationpolicies", namespace: "shop", object: policy)
                ).2)
            #expect(allowed.uid == "v2" && allowed.allowed)
            #expect(allowed.warnings == ["spec.selector: selects no meshed workload"])

            // A legal VirtualService whose catch-all comes first: allowed, with a warning on the dead route.
            let shadowed: JSONValue = [
                "apiVersion": "weft.dev/v1alpha1", "kind": "VirtualService",
                "metadata": ["name": "catalog", "namespace": "shop"],
                "spec": [
                    "hosts": ["catalog"],
                    "http": [
                        ["name": "everything", "route": [["destination": ["host": "catalog"]]]],
                        [
                            "match": [["uri": ["prefix": "/api"]]],
                            "route": [["destination": ["host": "catalog"]]],
                        ],
                    ],
                ],
            ]
            let warned = try Self.response(
                try await post(
                    "/validate",
                    try Self.review(
                        uid: "v3", kind: kind, resource: "virtualservices", namespace: "shop", object: shadowed)
                ).2)
            #expect(warned.uid == "v3" && warned.allowed)
            #expect(
                warned.warnings == [
                    "spec.http[1]: never matched: spec.http[0] (everything) before it matches every request"
                ], "\(String(describing: warned.warnings))")
        }
    }

    @Test("the webhook certificate is re-issued at half its lifetime, before it expires")
    func rotates() throws {
        let clock = Mutex(Date())
        let ca = try Self.meshCA(now: { clock.withLock { $0 } }, lifetime: 600)
        let tls = try WebhookTLS(.meshCA(ca, hosts: ["weft-controller.weft-system.svc"]))
        let first = tls.chainPEM
        _ = tls.connectionContext()
        #expect(tls.chainPEM == first)
        clock.withLock { $0 = $0.addingTimeInterval(301) }
        _ = tls.connectionContext()
        #expect(tls.chainPEM != first)
    }
}

/// Polls `value` until it is non-nil (up to 30 s).
func webhookPort<T: Sendable>(_ value: @Sendable () async -> T?) async throws -> T {
    for _ in 0..<3000 {
        if let found = await value() { return found }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw CancellationError()
}
