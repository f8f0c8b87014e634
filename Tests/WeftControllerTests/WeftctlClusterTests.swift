import Foundation
import KubeModel
import Logging
import Testing
import WeftController
import WeftIdentity
import WeftTesting

/// `weftctl check` and `weftctl analyze` against a cluster: the `weftctl` binary with a kubeconfig that points at
/// `FakeAPIServer`, seeded with what `weftctl install` renders plus what the API server, the kube-controller-
/// manager and the controller would have written (CRD conditions, Deployment status, caBundles, EndpointSlices).
/// The validating webhook is reached by URL at the real HTTPS admission server; /proxies comes from the real
/// controller HTTP server with an empty push hub.
@Suite("weftctl check and live analyze")
struct WeftctlClusterTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let weftctl = root.appendingPathComponent(".build/debug/weftctl").path
    static let logger = Logger(label: "test.weftctl")

    /// The fake cluster, a webhook server and a controller HTTP server, for one test.
    struct Cluster {
        var server: FakeAPIServer
        var kubeconfig: String
        var webhookURL: String
        var controllerURL: String
        /// The controller HTTP server's port, for the API server's service proxy.
        var controllerPort: Int
        var caBundle: String
    }

    // MARK: check

    @Test func checkPassesOnAHealthyInstall() async throws {
        try await Self.withCluster { cluster in
            try await Self.seedHealthy(cluster)
            let run = try await Self.run([
                "check", "--kubeconfig", cluster.kubeconfig, "--controller", cluster.controllerURL,
            ])
            #expect(run.status == 0, "\(run.stdoutText)\(run.stderrText)")
            let lines = run.stdoutText.split(separator: "\n").map(String.init)
            #expect(!lines.contains { $0.hasPrefix("✘") }, "\(run.stdoutText)")
            for expected in [
                "✔ can reach the API server at \(cluster.server.baseURL) (v1.34.0-weft-fake)",
                "✔ authorizationpolicies.weft.dev serves v1alpha1 and is established",
                "✔ the controller is ready (2 of 2 replicas)",
                "✔ every pod selected for injection has the sidecar (0 meshed pods)",
                "✔ 0 proxies known to the controller, 0 synced",
            ] {
                #expect(lines.contains(expected), "missing \(expected) in:\n\(run.stdoutText)")
            }
            #expect(lines.contains { $0.hasPrefix("✔ ServiceAccount weft-system/weft-controller may do what") })
            #expect(
                lines.contains {
                    $0.hasPrefix("✔ MutatingWebhookConfiguration weft-injector webhook namespace.inject.weft.dev: ")
                        && $0.hasSuffix("Service weft-system/weft-controller:443 has 2 ready endpoints")
                }, "\(run.stdoutText)")
            #expect(
                lines.contains {
                    $0.hasPrefix(
                        "✔ ValidatingWebhookConfiguration weft-validator webhook validate.weft.dev: \(cluster.webhookURL) answers over TLS verified"
                    )
                }, "\(run.stdoutText)")
            #expect(lines.last == "Status check results are ✔")

            // -o json: the same checks, machine-readable.
            let json = try await Self.run([
                "check", "--kubeconfig", cluster.kubeconfig, "--controller", cluster.controllerURL, "-o", "json",
            ])
            let results = try JSONParser.parse(Array(json.stdout)).arrayValue ?? []
            #expect(results.count == lines.filter { $0.hasPrefix("✔") || $0.hasPrefix("‼") }.count)
            #expect(results.allSatisfy { $0["status"]?.stringValue == "ok" }, "\(json.stdoutText)")
        }
    }

    @Test func checkNamesEveryBrokenPartWithAHint() async throws {
        try await Self.withCluster { cluster in
            try await Self.seedHealthy(cluster)
            let server = cluster.server
            // A CRD missing, a ClusterRole rule dropped, the injector's caBundle empty, the validator's from
            // another CA, a meshed namespace with a pod that lacks the sidecar and a sidecar with no stream.
            #expect(
                server.remove(
                    group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", namespace: nil,
                    name: "authorizationpolicies.weft.dev"))
            var role = try #require(
                Self.object(server, "rbac.authorization.k8s.io", "clusterroles", nil, "weft-controller"))
            let rules = (role["rules"]?.arrayValue ?? []).filter {
                $0["resources"]?.arrayValue?.contains("tokenreviews") != true
            }
            role = Self.setting(role, ["rules"], .array(rules))
            try server.seed(role)
            try Self.setCABundle(server, "mutatingwebhookconfigurations", "weft-injector", "")
            let otherCA = try CertificateAuthority.generateRoot(
                trustDomain: try TrustDomain("other.local"), now: Date(), serialNumbers: .random)
            try Self.setCABundle(server, "validatingwebhookconfigurations", "weft-validator", otherCA.certificatePEM)
            try server.seed(Self.pod("shop", "legacy-1", sidecar: false))
            try server.seed(Self.pod("shop", "web-1", sidecar: true))

            let run = try await Self.run([
                "check", "--kubeconfig", cluster.kubeconfig, "--controller", cluster.controllerURL,
            ])
            #expect(run.status == 1, "\(run.stdoutText)\(run.stderrText)")
            let text = run.stdoutText
            for expected in [
                "✘ authorizationpolicies.weft.dev is not installed\n    hint: weftctl install | kubectl apply -f -",
                "✘ ServiceAccount weft-system/weft-controller lacks cluster-wide: create tokenreviews.authentication.k8s.io\n",
                "✘ MutatingWebhookConfiguration weft-injector webhook namespace.inject.weft.dev: caBundle is empty\n",
                "✘ ValidatingWebhookConfiguration weft-validator webhook validate.weft.dev: \(cluster.webhookURL) cannot be reached with its caBundle",
                "✘ 1 pod selected for injection runs without the sidecar: shop/legacy-1\n    hint: they started before",
                "✘ 1 sidecar has no push stream to the controller: shop/web-1\n",
                "Status check results are ✘: 7 failed\n",
            ] {
                #expect(text.contains(expected), "missing \(expected) in:\n\(text)")
            }
            // What still works is still reported as working.
            #expect(text.contains("✔ virtualservices.weft.dev serves v1alpha1 and is established"))
            #expect(
                text.contains(
                    "✔ ServiceAccount weft-system/weft-controller may do what the controller does in weft-system"))
        }
    }

    /// Without `--controller`: `check`, `proxy-status` and `proxy-config` reach the controller's HTTP port through
    /// the API server's service proxy (`services/http:weft-controller:http-monitoring/proxy`), as in a cluster.
    @Test func theControllerIsReachedThroughTheAPIServersServiceProxy() async throws {
        try await Self.withCluster { cluster in
            try await Self.seedHealthy(cluster)
            // No endpoint yet: the API server's 503, and a hint.
            let unreachable = try await Self.run(["proxy-status", "--kubeconfig", cluster.kubeconfig])
            #expect(unreachable.status == 1)
            #expect(
                unreachable.stderrText.contains("no endpoints available for service \"weft-controller\""),
                "\(unreachable.stderrText)")
            #expect(unreachable.stderrText.contains("hint: is weft-controller running in weft-system?"))

            cluster.server.routeServiceProxy(
                namespace: "weft-system", service: "weft-controller", to: cluster.controllerPort)
            let check = try await Self.run(["check", "--kubeconfig", cluster.kubeconfig])
            #expect(check.status == 0, "\(check.stdoutText)\(check.stderrText)")
            #expect(check.stdoutText.contains("✔ 0 proxies known to the controller, 0 synced\n"), "\(check.stdoutText)")
            let status = try await Self.run(["proxy-status", "--kubeconfig", cluster.kubeconfig])
            #expect(status.status == 0, "\(status.stderrText)")
            #expect(
                status.stdoutText.hasPrefix("PROXY  IDENTITY  CONNECTED SINCE  SENT  ACKED  STATUS"),
                "\(status.stdoutText)")
            let json = try await Self.run([
                "proxy-status", "--kubeconfig", cluster.kubeconfig, "-n", "shop", "-o", "json",
            ])
            #expect(json.status == 0)
            #expect(Self.json(json.stdoutText).arrayValue?.isEmpty == true, "\(json.stdoutText)")
            // The controller's own 404 comes back through the proxy.
            let missing = try await Self.run(["proxy-config", "shop/nope", "--kubeconfig", cluster.kubeconfig])
            #expect(missing.status == 1)
            #expect(missing.stderrText.contains("/proxy/proxies/shop/nope"), "\(missing.stderrText)")
            #expect(cluster.server.count(pathContains: "/services/http:weft-controller:http-monitoring/proxy/") >= 4)
        }
    }

    @Test func checkFailsFastWhenTheAPIServerIsUnreachable() async throws {
        let kubeconfig = try Self.kubeconfig(server: "http://127.0.0.1:1")
        defer { try? FileManager.default.removeItem(atPath: kubeconfig) }
        let run = try await Self.run(["check", "--kubeconfig", kubeconfig])
        #expect(run.status == 1)
        let lines = run.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.first == "kubernetes-api")
        #expect(lines.filter { $0.hasPrefix("✘") || $0.hasPrefix("✔") }.count == 1, "\(run.stdoutText)")
        #expect(lines.contains { $0.hasPrefix("✘ can reach the API server at http://127.0.0.1:1") })
        #expect(lines.contains("    hint: check the kubeconfig's server and credentials (kubectl cluster-info)"))
    }

    // MARK: analyze

    @Test func analyzeReadsTheLiveClusterAndComparesTheWrittenStatus() async throws {
        try await Self.withCluster { cluster in
            let server = cluster.server
            try server.seed(
                Self.json(
                    """
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
                    """))
            try server.seed(
                Self.json(
                    """
                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "catalog", "namespace": "shop"},
                     "spec": {"selector": {"app": "catalog"}, "ports": [{"name": "http", "port": 80}]}}
                    """))
            // Weights summing to 90: invalid. Generation 3, and a status the controller wrote for generation 2.
            try server.seed(
                Self.json(
                    """
                    {"apiVersion": "weft.dev/v1alpha1", "kind": "VirtualService",
                     "metadata": {"name": "catalog", "namespace": "shop", "generation": 3},
                     "spec": {"hosts": ["catalog"], "http": [{"route": [
                       {"destination": {"host": "catalog"}, "weight": 60},
                       {"destination": {"host": "catalog"}, "weight": 30}]}]},
                     "status": {"observedGeneration": 2, "conditions": [
                       {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                        "observedGeneration": 2, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
                    """))
            let run = try await Self.run(["analyze", "--kubeconfig", cluster.kubeconfig])
            #expect(run.status == 1, "\(run.stdoutText)\(run.stderrText)")
            let text = run.stdoutText
            #expect(
                text.contains("shop/VirtualService/catalog: spec.http[0].route: weights must sum to 100"), "\(text)")
            #expect(
                text.contains(
                    "warning: shop/VirtualService/catalog: status: the status is for generation 2, the resource is at 3"
                ),
                "\(text)")
            #expect(text.contains("shop/VirtualService/catalog "), "the conditions table lists it:\n\(text)")

            // -n keeps only that namespace's problems; the mesh is still compiled whole.
            let elsewhere = try await Self.run(["analyze", "--kubeconfig", cluster.kubeconfig, "-n", "other"])
            #expect(elsewhere.status == 0, "\(elsewhere.stdoutText)\(elsewhere.stderrText)")
            #expect(elsewhere.stdoutText.hasPrefix("No problems found."), "\(elsewhere.stdoutText)")
        }
    }

    // MARK: Fixtures

    static func withCluster(_ body: (Cluster) async throws -> Void) async throws {
        let server = try await FakeAPIServer.start()
        let ca = try AdmissionWebhookTests.meshCA()
        let tls = try WebhookTLS(.meshCA(ca, hosts: ["127.0.0.1"]))
        let webhook = AdmissionWebhookServer(
            host: "127.0.0.1", port: 0, tls: tls,
            reviewer: AdmissionReviewer(context: AdmissionWebhookTests.context, logger: Self.logger),
            logger: Self.logger)
        let http = ControllerHTTPServer(
            host: "127.0.0.1", port: 0, state: ControllerState(), ready: { true }, hub: PushHub(logger: Self.logger),
            logger: Self.logger)
        let kubeconfig = try Self.kubeconfig(server: server.baseURL)
        defer { try? FileManager.default.removeItem(atPath: kubeconfig) }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await webhook.run() }
                group.addTask { try await http.run() }
                defer { group.cancelAll() }
                let validatorPort = try await webhookPort { webhook.listeningPort }
                let httpPort = try await webhookPort { http.listeningPort }
                let cluster = Cluster(
                    server: server, kubeconfig: kubeconfig,
                    webhookURL: "https://127.0.0.1:\(validatorPort)/validate",
                    controllerURL: "http://127.0.0.1:\(httpPort)", controllerPort: httpPort,
                    caBundle: try ca.trustBundlePEM)
                try await body(cluster)
            }
        } catch {
            try? await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    /// What `weftctl install` renders, then what the cluster's own components would have added.
    static func seedHealthy(_ cluster: Cluster) async throws {
        let server = cluster.server
        let rendered = try await Self.installObjects()
        for var object in rendered {
            switch object["kind"]?.stringValue {
            case "PodDisruptionBudget":
                continue  // not served by FakeAPIServer, and not checked
            case "CustomResourceDefinition":
                object = Self.setting(
                    object, ["status"],
                    Self.json(
                        """
                        {"conditions": [{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}
                        """))
            case "Deployment":
                object = Self.setting(
                    object, ["status"], Self.json(#"{"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}"#))
            case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
                var webhooks = object["webhooks"]?.arrayValue ?? []
                for index in webhooks.indices {
                    var client = webhooks[index]["clientConfig"] ?? .object([:])
                    client = Self.setting(
                        client, ["caBundle"], .string(Data(cluster.caBundle.utf8).base64EncodedString()))
                    if object["kind"]?.stringValue == "ValidatingWebhookConfiguration" {
                        client = .object(["url": .string(cluster.webhookURL), "caBundle": client["caBundle"] ?? .null])
                    }
                    webhooks[index] = Self.setting(webhooks[index], ["clientConfig"], client)
                }
                object = Self.setting(object, ["webhooks"], .array(webhooks))
            default:
                break
            }
            try server.seed(object)
        }
        try server.seed(
            Self.json(
                """
                {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": "weft-controller-abcde", "namespace": "weft-system",
                   "labels": {"kubernetes.io/service-name": "weft-controller"}},
                 "addressType": "IPv4",
                 "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": true}},
                               {"addresses": ["10.0.0.6"], "conditions": {"ready": true}}],
                 "ports": [{"name": "https-webhook", "port": 15017}]}
                """))
        try server.seed(
            Self.json(
                #"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"weft.dev/inject": "enabled"}}}"#
            ))
        // Opted out: needs no sidecar.
        var batch = Self.pod("shop", "batch-1", sidecar: false)
        batch = Self.setting(batch, ["metadata", "annotations"], .object(["weft.dev/inject": "false"]))
        try server.seed(batch)
    }

    /// `weftctl install -o json`'s objects (run with `ChildProcess`: a blocking wait here would hold one of the
    /// cooperative pool's two threads and starve the suites running beside it).
    static func installObjects() async throws -> [JSONValue] {
        let result = try await Self.run(["install", "-o", "json"])
        try #require(result.status == 0, "\(result.stderrText)")
        return try JSONParser.parse(Array(result.stdout))["items"]?.arrayValue ?? []
    }

    static func pod(_ namespace: String, _ name: String, sidecar: Bool) -> JSONValue {
        let proxy = sidecar ? #", {"name": "weft-proxy", "image": "weft-proxy", "restartPolicy": "Always"}"# : ""
        return Self.json(
            """
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "\(name)", "namespace": "\(namespace)"},
             "spec": {"initContainers": [{"name": "init", "image": "busybox"}\(proxy)],
                      "containers": [{"name": "app", "image": "app"}]},
             "status": {"phase": "Running"}}
            """)
    }

    static func setCABundle(_ server: FakeAPIServer, _ plural: String, _ name: String, _ pem: String) throws {
        var object = try #require(Self.object(server, "admissionregistration.k8s.io", plural, nil, name))
        var webhooks = object["webhooks"]?.arrayValue ?? []
        for index in webhooks.indices {
            let client = Self.setting(
                webhooks[index]["clientConfig"] ?? .object([:]), ["caBundle"],
                .string(Data(pem.utf8).base64EncodedString()))
            webhooks[index] = Self.setting(webhooks[index], ["clientConfig"], client)
        }
        object = Self.setting(object, ["webhooks"], .array(webhooks))
        try server.seed(object)
    }

    static func object(_ server: FakeAPIServer, _ group: String, _ plural: String, _ namespace: String?, _ name: String)
        -> JSONValue?
    {
        server.object(group: group, version: "v1", plural: plural, namespace: namespace, name: name)
    }

    static func kubeconfig(server: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "weftctl-kubeconfig-\(UInt64.random(in: 0...UInt64.max))"
        ).path
        try """
        apiVersion: v1
        kind: Config
        clusters: [{name: fake, cluster: {server: "\(server)"}}]
        users: [{name: fake, user: {}}]
        contexts: [{name: fake, context: {cluster: fake, user: fake}}]
        current-context: fake
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func run(_ arguments: [String]) async throws -> ChildProcessResult {
        let result = try await ChildProcess.run([Self.weftctl] + arguments, timeout: .seconds(60))
        try #require(!result.timedOut, "weftctl \(arguments) timed out")
        return result
    }

    static func json(_ text: String) -> JSONValue {
        (try? JSONParser.parse(Array(text.utf8))) ?? .null
    }

    static func setting(_ json: JSONValue, _ path: [String], _ value: JSONValue) -> JSONValue {
        guard let key = path.first else { return value }
        var members = json.objectValue ?? [:]
        members[key] = Self.setting(members[key] ?? .object([:]), Array(path.dropFirst()), value)
        return .object(members)
    }
}
