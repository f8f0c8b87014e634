import ArgumentParser
import AsyncHTTPClient
import Foundation
import KubeClient
import KubeModel
import NIOSSL
import WeftCompiler
import WeftController
import X509

/// `weftctl check`: is Weft installed and working in this cluster? One line per check, ✔ or ✘ with a hint.
struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that Weft is installed and working in the cluster; each failure comes with a hint.",
        discussion: """
            Checks, in order: the API server is reachable; the four CRDs are installed, serve v1alpha1 and are \
            established (and match the ones this weftctl installs); the control plane's namespace, \
            ServiceAccount and Deployment exist and the controller is ready; its RBAC grants everything the \
            controller uses (compared with manifests/); both webhook configurations exist with a valid \
            caBundle and reach a ready controller; every proxy the controller knows is synced; and no pod that \
            the injector would inject runs without the sidecar, or with one that is not connected. Exits 1 when \
            any check fails (warnings do not).
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table
        case json
    }

    @OptionGroup var cluster: ClusterOptions

    @Option(name: .shortAndLong, help: "The control plane's namespace.")
    var namespace: String = "weft-system"

    @Option(
        help: """
            The controller's HTTP address for /proxies (e.g. http://127.0.0.1:15014 through kubectl port-forward); \
            default: the weft-controller Service through the API server's service proxy.
            """)
    var controller: String?

    @Option(help: "The manifests folder whose CRDs and RBAC are expected (default: the repository's manifests/).")
    var manifests: String?

    @Option(name: .shortAndLong, help: "Output format: table or json.")
    var output: Format = .table

    func run() async throws {
        let expected = try? InstallManifests.objects(in: try InstallManifests.locate(self.manifests))
        let results = await self.cluster.withClientResult { client in
            var checker = ClusterChecker(
                client: client, namespace: self.namespace, controller: self.controller, expected: expected)
            await checker.runAll()
            return checker.results
        }
        switch self.output {
        case .json:
            print(String(decoding: try JSONEncoder.sorted.encode(results), as: UTF8.self))
        case .table:
            print(CheckResult.text(results, colour: isatty(STDOUT_FILENO) == 1), terminator: "")
        }
        if results.contains(where: { $0.status == .failed }) { throw ExitCode(1) }
    }
}

/// One line of `weftctl check`.
struct CheckResult: Codable, Hashable {
    enum Status: String, Codable {
        case ok
        case warning
        case failed
    }

    var category: String
    var status: Status
    var message: String
    var hint: String?

    static func text(_ results: [CheckResult], colour: Bool) -> String {
        func paint(_ text: String, _ code: String) -> String { colour ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
        var out = ""
        var category: String?
        for result in results {
            if result.category != category {
                if category != nil { out += "\n" }
                out += result.category + "\n" + String(repeating: "-", count: result.category.count) + "\n"
                category = result.category
            }
            let mark =
                switch result.status {
                case .ok: paint("✔", "32")
                case .warning: paint("‼", "33")
                case .failed: paint("✘", "31")
                }
            out += "\(mark) \(result.message)\n"
            if let hint = result.hint, result.status != .ok { out += "    hint: \(hint)\n" }
        }
        let failed = results.filter { $0.status == .failed }.count
        let warned = results.filter { $0.status == .warning }.count
        out += "\n"
        if failed == 0 {
            out += "Status check results are \(paint("✔", "32"))"
            out += warned > 0 ? " (\(warned) warning\(warned == 1 ? "" : "s"))\n" : "\n"
        } else {
            out += "Status check results are \(paint("✘", "31")): \(failed) failed"
            out += warned > 0 ? ", \(warned) warning\(warned == 1 ? "" : "s")\n" : "\n"
        }
        return out
    }
}

extension ClusterOptions {
    /// Like `withClient`, but a configuration that does not load becomes the first failed check.
    func withClientResult(_ body: (KubeClient) async -> [CheckResult]) async -> [CheckResult] {
        do {
            return try await self.withClient { client in await body(client) }
        } catch {
            let message = (error as? ValidationError)?.message ?? "\(error)"
            return [
                CheckResult(
                    category: "kubernetes-api", status: .failed, message: "can load the client configuration",
                    hint: message)
            ]
        }
    }
}

/// Runs the checks against one cluster and collects their results.
struct ClusterChecker {
    static let crds = [
        "virtualservices.weft.dev", "destinationpolicies.weft.dev", "meshtlspolicies.weft.dev",
        "authorizationpolicies.weft.dev",
    ]
    static let webhooks = [
        ("mutatingwebhookconfigurations", "weft-injector"), ("validatingwebhookconfigurations", "weft-validator"),
    ]
    static let name = "weft-controller"
    static let installHint = "weftctl install | kubectl apply -f -"

    let client: KubeClient
    let namespace: String
    let controller: String?
    /// What `weftctl install` renders, when manifests/ was found.
    let expected: [JSONValue]?
    var results: [CheckResult] = []
    private var category = ""

    init(client: KubeClient, namespace: String, controller: String?, expected: [JSONValue]?) {
        self.client = client
        self.namespace = namespace
        self.controller = controller
        self.expected = expected
    }

    private mutating func ok(_ message: String) {
        self.results.append(CheckResult(category: self.category, status: .ok, message: message))
    }

    private mutating func warn(_ message: String, hint: String? = nil) {
        self.results.append(CheckResult(category: self.category, status: .warning, message: message, hint: hint))
    }

    private mutating func fail(_ message: String, hint: String? = nil) {
        self.results.append(CheckResult(category: self.category, status: .failed, message: message, hint: hint))
    }

    mutating func runAll() async {
        guard await self.checkAPI() else { return }
        await self.checkCRDs()
        let controllerReady = await self.checkControlPlane()
        await self.checkRBAC()
        await self.checkWebhooks()
        await self.checkDataPlane(controllerReady: controllerReady)
    }

    // MARK: API

    mutating func checkAPI() async -> Bool {
        self.category = "kubernetes-api"
        do {
            let version = try JSONParser.parse(try await self.client.getRaw("/version"))
            let server = self.client.configuration.server.absoluteString
            self.ok(
                "can reach the API server at \(server) (\(version["gitVersion"]?.stringValue ?? "unknown version"))")
            return true
        } catch {
            self.fail(
                "can reach the API server at \(self.client.configuration.server.absoluteString): \(error)",
                hint: "check the kubeconfig's server and credentials (kubectl cluster-info)")
            return false
        }
    }

    // MARK: CRDs

    mutating func checkCRDs() async {
        self.category = "crds"
        for name in Self.crds {
            let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/\(name)"
            let crd: JSONValue?
            do {
                crd = try await self.client.getJSONIfPresent(path)
            } catch {
                self.fail(
                    "\(name): cannot be read: \(error)", hint: "weftctl check needs get on customresourcedefinitions")
                continue
            }
            guard let crd else {
                self.fail("\(name) is not installed", hint: Self.installHint)
                continue
            }
            let versions = crd["spec"]?["versions"]?.arrayValue ?? []
            guard let served = versions.first(where: { $0["name"]?.stringValue == "v1alpha1" }),
                served["served"] == .bool(true)
            else {
                let listed = versions.compactMap { $0["name"]?.stringValue }.joined(separator: ", ")
                self.fail(
                    "\(name) does not serve v1alpha1 (it serves: \(listed.isEmpty ? "nothing" : listed))",
                    hint: "install the CRDs of this Weft version: \(Self.installHint)")
                continue
            }
            let conditions = crd["status"]?["conditions"]?.arrayValue ?? []
            let established = conditions.first { $0["type"]?.stringValue == "Established" }
            guard established?["status"]?.stringValue == "True" else {
                let reason = established?["message"]?.stringValue ?? "no Established condition yet"
                self.fail(
                    "\(name) is not established: \(reason)",
                    hint: "kubectl describe crd \(name) (a name conflict or an invalid schema keeps it from serving)")
                continue
            }
            if let expected = self.expected?.first(where: {
                $0["kind"]?.stringValue == "CustomResourceDefinition" && $0["metadata"]?["name"]?.stringValue == name
            }) {
                let want = (expected["spec"]?["versions"]?.arrayValue ?? []).first {
                    $0["name"]?.stringValue == "v1alpha1"
                }
                if want?["schema"] != served["schema"] {
                    self.warn(
                        "\(name) serves v1alpha1, but its schema differs from the one this weftctl installs",
                        hint: "an older or newer Weft installed it; apply this version's CRDs: \(Self.installHint)")
                    continue
                }
            }
            self.ok("\(name) serves v1alpha1 and is established")
        }
    }

    // MARK: Control plane

    /// Whether the controller has a ready replica.
    mutating func checkControlPlane() async -> Bool {
        self.category = "control-plane"
        let ns = self.namespace
        do {
            guard try await self.client.getJSONIfPresent("/api/v1/namespaces/\(ns)") != nil else {
                self.fail("namespace \(ns) does not exist", hint: Self.installHint)
                return false
            }
            self.ok("namespace \(ns) exists")
            if try await self.client.getJSONIfPresent("/api/v1/namespaces/\(ns)/serviceaccounts/\(Self.name)") == nil {
                self.fail("ServiceAccount \(ns)/\(Self.name) does not exist", hint: Self.installHint)
            } else {
                self.ok("ServiceAccount \(ns)/\(Self.name) exists")
            }
            let path = "/apis/apps/v1/namespaces/\(ns)/deployments/\(Self.name)"
            guard let deployment = try await self.client.getJSONIfPresent(path) else {
                self.fail("Deployment \(ns)/\(Self.name) does not exist", hint: Self.installHint)
                return false
            }
            let wanted = deployment["spec"]?["replicas"]?.intValue ?? 1
            let status = deployment["status"]
            let ready = status?["readyReplicas"]?.intValue ?? 0
            let updated = status?["updatedReplicas"]?.intValue ?? 0
            if ready == 0 {
                self.fail(
                    "the controller is not ready (0 of \(wanted) replicas ready)",
                    hint: "kubectl -n \(ns) describe deployment \(Self.name); kubectl -n \(ns) logs deploy/\(Self.name)"
                )
                return false
            }
            if ready < wanted || updated < wanted {
                self.warn(
                    "the controller is ready, \(ready) of \(wanted) replicas (\(updated) updated): a rollout is in "
                        + "progress or a replica cannot start",
                    hint: "kubectl -n \(ns) rollout status deployment/\(Self.name)")
            } else {
                self.ok("the controller is ready (\(ready) of \(wanted) replicas)")
            }
            return true
        } catch {
            self.fail("the control plane cannot be read: \(error)")
            return false
        }
    }

    // MARK: RBAC

    mutating func checkRBAC() async {
        self.category = "rbac"
        guard let expected = self.expected else {
            self.warn(
                "the controller's permissions were not checked: manifests/ was not found",
                hint: "run from the repository or pass --manifests DIR")
            return
        }
        let clusterWide = RBACRules.required(in: expected, kind: "ClusterRole", name: Self.name, namespace: nil)
        let local = RBACRules.required(in: expected, kind: "Role", name: Self.name, namespace: self.namespace)
        do {
            let granted = try await self.grantedRules()
            let missingCluster = RBACRules.missing(clusterWide, grantedBy: granted.clusterWide)
            let missingLocal = RBACRules.missing(local, grantedBy: granted.clusterWide + granted.local)
            let subject = "ServiceAccount \(self.namespace)/\(Self.name)"
            if missingCluster.isEmpty {
                self.ok(
                    "\(subject) may do what the controller does across the cluster (\(clusterWide.count) permissions)")
            } else {
                self.fail(
                    "\(subject) lacks cluster-wide: \(missingCluster.map(\.description).joined(separator: ", "))",
                    hint: "apply the ClusterRole and ClusterRoleBinding \(Self.name): \(Self.installHint)")
            }
            if missingLocal.isEmpty {
                self.ok("\(subject) may do what the controller does in \(self.namespace) (\(local.count) permissions)")
            } else {
                self.fail(
                    "\(subject) lacks in \(self.namespace): \(missingLocal.map(\.description).joined(separator: ", "))",
                    hint: "apply the Role and RoleBinding \(Self.name): \(Self.installHint)")
            }
        } catch {
            self.fail(
                "the controller's RBAC cannot be read: \(error)",
                hint: "weftctl check needs list on clusterroles, clusterrolebindings, roles and rolebindings")
        }
    }

    /// The rules bound to the controller's ServiceAccount: by ClusterRoleBindings (everywhere) and by
    /// RoleBindings in its namespace.
    func grantedRules() async throws -> (clusterWide: [RBACRules.Rule], local: [RBACRules.Rule]) {
        let rbac = "/apis/rbac.authorization.k8s.io/v1"
        let clusterRoles = try await self.client.listJSON("\(rbac)/clusterroles")
        func roleRules(_ roles: [JSONValue], _ name: String?) -> [RBACRules.Rule] {
            roles.filter { $0["metadata"]?["name"]?.stringValue == name }.flatMap(RBACRules.rules(of:))
        }
        func binds(_ binding: JSONValue) -> Bool {
            (binding["subjects"]?.arrayValue ?? []).contains { subject in
                subject["kind"]?.stringValue == "ServiceAccount" && subject["name"]?.stringValue == Self.name
                    && subject["namespace"]?.stringValue == self.namespace
            }
        }
        var clusterWide: [RBACRules.Rule] = []
        for binding in try await self.client.listJSON("\(rbac)/clusterrolebindings") where binds(binding) {
            clusterWide += roleRules(clusterRoles, binding["roleRef"]?["name"]?.stringValue)
        }
        let roles = try await self.client.listJSON("\(rbac)/namespaces/\(self.namespace)/roles")
        var local: [RBACRules.Rule] = []
        for binding in try await self.client.listJSON("\(rbac)/namespaces/\(self.namespace)/rolebindings")
        where binds(binding) {
            let ref = binding["roleRef"]
            let source = ref?["kind"]?.stringValue == "ClusterRole" ? clusterRoles : roles
            local += roleRules(source, ref?["name"]?.stringValue)
        }
        return (clusterWide, local)
    }

    // MARK: Webhooks

    mutating func checkWebhooks() async {
        self.category = "webhooks"
        for (plural, name) in Self.webhooks {
            let kind =
                plural == "mutatingwebhookconfigurations"
                ? "MutatingWebhookConfiguration" : "ValidatingWebhookConfiguration"
            let configuration: JSONValue?
            do {
                configuration = try await self.client.getJSONIfPresent(
                    "/apis/admissionregistration.k8s.io/v1/\(plural)/\(name)")
            } catch {
                self.fail("\(kind) \(name) cannot be read: \(error)")
                continue
            }
            guard let configuration else {
                self.fail("\(kind) \(name) does not exist", hint: Self.installHint)
                continue
            }
            for webhook in configuration["webhooks"]?.arrayValue ?? [] {
                await self.checkWebhook(webhook, in: "\(kind) \(name)")
            }
        }
    }

    private mutating func checkWebhook(_ webhook: JSONValue, in owner: String) async {
        let label = "\(owner) webhook \(webhook["name"]?.stringValue ?? "?")"
        let client = webhook["clientConfig"]
        let bundle = client?["caBundle"]?.stringValue ?? ""
        guard !bundle.isEmpty else {
            self.fail(
                "\(label): caBundle is empty",
                hint: "the controller fills it when it starts: is it running, and may it patch \(owner)?")
            return
        }
        guard let pemData = Data(base64Encoded: bundle), let pem = String(data: pemData, encoding: .utf8) else {
            self.fail("\(label): caBundle is not base64", hint: "restart the controller, which writes it again")
            return
        }
        let certificates = CABundle.certificates(in: pem)
        guard !certificates.isEmpty else {
            self.fail(
                "\(label): caBundle holds no PEM certificate", hint: "restart the controller, which writes it again")
            return
        }
        let now = Date()
        let expired = certificates.filter { $0.notValidAfter < now || $0.notValidBefore > now }
        guard expired.count < certificates.count else {
            self.fail(
                "\(label): every caBundle certificate is outside its validity (\(expired.map(\.subject.description)))",
                hint: "the API server cannot verify the webhook: restart the controller to reissue")
            return
        }
        let until = certificates.map(\.notValidAfter).max().map { ISO8601DateFormatter().string(from: $0) } ?? "?"
        if let service = client?["service"] {
            await self.checkWebhookService(service, label: label, until: until)
        } else if let url = client?["url"]?.stringValue {
            do {
                try await CABundle.reach(url: url, trusting: pem)
                self.ok("\(label): \(url) answers over TLS verified with its caBundle (valid until \(until))")
            } catch {
                self.fail(
                    "\(label): \(url) cannot be reached with its caBundle: \(error)",
                    hint: "is the controller listening there (--webhook-url, --webhook-host), and does its "
                        + "certificate come from the CA in caBundle?")
            }
        } else {
            self.fail("\(label): clientConfig has neither service nor url")
        }
    }

    private mutating func checkWebhookService(_ service: JSONValue, label: String, until: String) async {
        let ns = service["namespace"]?.stringValue ?? self.namespace
        let name = service["name"]?.stringValue ?? "?"
        let port = service["port"]?.intValue ?? 443
        do {
            guard let found = try await self.client.getJSONIfPresent("/api/v1/namespaces/\(ns)/services/\(name)")
            else {
                self.fail("\(label): Service \(ns)/\(name) does not exist", hint: Self.installHint)
                return
            }
            let ports = found["spec"]?["ports"]?.arrayValue ?? []
            guard ports.contains(where: { $0["port"]?.intValue == port }) else {
                self.fail("\(label): Service \(ns)/\(name) has no port \(port)", hint: Self.installHint)
                return
            }
            let slices = try await self.client.listJSON(
                "/apis/discovery.k8s.io/v1/namespaces/\(ns)/endpointslices",
                labelSelector: "kubernetes.io/service-name=\(name)")
            let ready = slices.flatMap { $0["endpoints"]?.arrayValue ?? [] }.filter {
                $0["conditions"]?["ready"] != .bool(false)
            }
            if ready.isEmpty {
                self.fail(
                    "\(label): Service \(ns)/\(name) has no ready endpoint, so the API server cannot call it",
                    hint: "kubectl -n \(ns) get endpointslices -l kubernetes.io/service-name=\(name)")
            } else {
                self.ok(
                    "\(label): caBundle valid until \(until); Service \(ns)/\(name):\(port) has \(ready.count) "
                        + "ready endpoint\(ready.count == 1 ? "" : "s")")
            }
        } catch {
            self.fail("\(label): Service \(ns)/\(name) cannot be read: \(error)")
        }
    }

    // MARK: Data plane

    mutating func checkDataPlane(controllerReady: Bool) async {
        self.category = "data-plane"
        var proxies: [PushHub.ProxyStatus]?
        if controllerReady || self.controller != nil {
            do {
                let body: [UInt8]
                if let controller = self.controller {
                    body = try await Self.httpGet(controller, "/proxies")
                } else {
                    body = try await self.client.getRaw(
                        "/api/v1/namespaces/\(self.namespace)/services/http:\(Self.name):http-monitoring/proxy/proxies")
                }
                proxies = try JSONDecoder().decode([PushHub.ProxyStatus].self, from: Data(body))
            } catch {
                self.fail(
                    "the controller's /proxies cannot be read: \(error)",
                    hint: "pass --controller http://127.0.0.1:15014 with kubectl -n \(self.namespace) port-forward "
                        + "deploy/\(Self.name) 15014")
            }
        }
        if let proxies {
            let counts = Dictionary(grouping: proxies, by: \.status).mapValues(\.count)
            let nacked = proxies.filter { $0.status == .nacked }
            if !nacked.isEmpty {
                self.fail(
                    "\(nacked.count) prox\(nacked.count == 1 ? "y refuses" : "ies refuse") the newest config: "
                        + nacked.map { "\($0.id) (\($0.error ?? "no reason"))" }.joined(separator: ", "),
                    hint: "weftctl proxy-status; weftctl analyze shows the resource at fault")
            }
            let stale = proxies.filter { $0.status == .stale }
            if !stale.isEmpty {
                self.warn(
                    "\(stale.count) prox\(stale.count == 1 ? "y has" : "ies have") not acknowledged the newest config "
                        + "yet: " + stale.map(\.id).joined(separator: ", "),
                    hint: "run the check again; if it stays, weftctl proxy-status")
            }
            if nacked.isEmpty {
                self.ok(
                    "\(proxies.count) prox\(proxies.count == 1 ? "y" : "ies") known to the controller, "
                        + "\(counts[.synced] ?? 0) synced")
            }
        }
        await self.checkPods(proxies: proxies)
    }

    /// Pods the injector would inject that run without the sidecar, and sidecars not connected.
    private mutating func checkPods(proxies: [PushHub.ProxyStatus]?) async {
        let namespaces: [JSONValue]
        let pods: [JSONValue]
        do {
            namespaces = try await self.client.listJSON("/api/v1/namespaces")
            pods = try await self.client.listJSON("/api/v1/pods")
        } catch {
            self.fail("pods cannot be listed: \(error)", hint: "weftctl check needs list on namespaces and pods")
            return
        }
        var labels: [String: [String: String]] = [:]
        for namespace in namespaces {
            guard let name = namespace["metadata"]?["name"]?.stringValue else { continue }
            labels[name] = (namespace["metadata"]?["labels"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
        }
        let settings = InjectionSettings(rootNamespace: self.namespace)
        let connected = Set((proxies ?? []).filter { $0.status != .disconnected }.map(\.id))
        var withoutSidecar: [String] = []
        var notConnected: [String] = []
        var meshed = 0
        for pod in pods {
            let ns = pod["metadata"]?["namespace"]?.stringValue ?? "default"
            let name = pod["metadata"]?["name"]?.stringValue ?? "?"
            let phase = pod["status"]?["phase"]?.stringValue
            guard phase == nil || phase == "Running" || phase == "Pending" else { continue }
            let spec = pod["spec"]
            let containers = (spec?["containers"]?.arrayValue ?? []) + (spec?["initContainers"]?.arrayValue ?? [])
            if containers.contains(where: { $0["name"]?.stringValue == WeftLabels.proxyContainer }) {
                meshed += 1
                if proxies != nil, phase == "Running", !connected.contains("\(ns)/\(name)") {
                    notConnected.append("\(ns)/\(name)")
                }
                continue
            }
            guard
                let result = try? Injector.inject(
                    pod: pod, namespace: ns, namespaceLabels: labels[ns] ?? [:], settings: settings),
                result.injected
            else { continue }
            withoutSidecar.append("\(ns)/\(name)")
        }
        if withoutSidecar.isEmpty {
            self.ok("every pod selected for injection has the sidecar (\(meshed) meshed pods)")
        } else {
            self.fail(
                "\(withoutSidecar.count) pod\(withoutSidecar.count == 1 ? "" : "s") selected for injection "
                    + "run\(withoutSidecar.count == 1 ? "s" : "") without the sidecar: "
                    + withoutSidecar.joined(separator: ", "),
                hint: "they started before injection was enabled, or while the webhook was down with "
                    + "failurePolicy Ignore: kubectl rollout restart their workloads")
        }
        if proxies != nil {
            if notConnected.isEmpty {
                self.ok("every running sidecar has a push stream to the controller")
            } else {
                self.fail(
                    "\(notConnected.count) sidecar\(notConnected.count == 1 ? " has" : "s have") no push stream to "
                        + "the controller: " + notConnected.joined(separator: ", "),
                    hint: "kubectl logs POD -c weft-proxy (the controller address, its token or the CA)")
            }
        }
    }

    static func httpGet(_ base: String, _ path: String) async throws -> [UInt8] {
        var trimmed = base
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        let response = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: trimmed + path), timeout: .seconds(10))
        let body = Array(buffer: try await response.body.collect(upTo: 64 << 20))
        guard (200..<300).contains(response.status.code) else {
            throw CheckError("GET \(trimmed + path): HTTP \(response.status.code)")
        }
        return body
    }
}

struct CheckError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A webhook's caBundle: its certificates, and a TLS connection that trusts only them.
enum CABundle {
    static func certificates(in pem: String) -> [Certificate] {
        var out: [Certificate] = []
        var rest = Substring(pem)
        let end = "-----END CERTIFICATE-----"
        while let start = rest.range(of: "-----BEGIN CERTIFICATE-----"), let stop = rest.range(of: end) {
            guard start.lowerBound < stop.lowerBound else { break }
            if let certificate = try? Certificate(pemEncoded: String(rest[start.lowerBound..<stop.upperBound])) {
                out.append(certificate)
            }
            rest = rest[stop.upperBound...]
        }
        return out
    }

    /// An HTTPS request to `url` whose server certificate must verify against `pem`: any HTTP answer means
    /// the webhook is reachable with that bundle (a GET of a webhook path answers 405).
    static func reach(url: String, trusting pem: String) async throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8)))
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
        do {
            _ = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

/// RBAC rules, and whether a set of them allows a set of permissions, as the API server's authorizer decides
/// (`*` in apiGroups, resources and verbs; `*/status`; resourceNames narrowing a rule).
enum RBACRules {
    struct Rule: Hashable {
        var apiGroups: [String]
        var resources: [String]
        var verbs: [String]
        var resourceNames: [String]
    }

    /// One thing the controller does: a verb on a resource (and a name, for rules with resourceNames).
    struct Permission: Hashable, CustomStringConvertible {
        var group: String
        var resource: String
        var verb: String
        var name: String?

        var description: String {
            let qualified = self.group.isEmpty ? self.resource : "\(self.resource).\(self.group)"
            return "\(self.verb) \(qualified)" + (self.name.map { "/\($0)" } ?? "")
        }
    }

    static func rules(of role: JSONValue) -> [Rule] {
        (role["rules"]?.arrayValue ?? []).map { rule in
            func strings(_ key: String) -> [String] { rule[key]?.arrayValue?.compactMap(\.stringValue) ?? [] }
            return Rule(
                apiGroups: strings("apiGroups"), resources: strings("resources"), verbs: strings("verbs"),
                resourceNames: strings("resourceNames"))
        }
    }

    /// The permissions the role `kind`/`name` of `objects` grants, one per verb, resource and name.
    static func required(in objects: [JSONValue], kind: String, name: String, namespace: String?) -> [Permission] {
        let role = objects.first {
            $0["kind"]?.stringValue == kind && $0["metadata"]?["name"]?.stringValue == name
        }
        var permissions: [Permission] = []
        for rule in role.map(Self.rules(of:)) ?? [] {
            for group in rule.apiGroups {
                for resource in rule.resources {
                    for verb in rule.verbs {
                        if rule.resourceNames.isEmpty {
                            permissions.append(Permission(group: group, resource: resource, verb: verb))
                        }
                        for name in rule.resourceNames {
                            permissions.append(Permission(group: group, resource: resource, verb: verb, name: name))
                        }
                    }
                }
            }
        }
        return permissions
    }

    static func allows(_ rule: Rule, _ permission: Permission) -> Bool {
        guard rule.apiGroups.contains("*") || rule.apiGroups.contains(permission.group) else { return false }
        guard rule.verbs.contains("*") || rule.verbs.contains(permission.verb) else { return false }
        let resourceMatches = rule.resources.contains { resource in
            if resource == "*" || resource == permission.resource { return true }
            // `*/status` is every resource's status subresource.
            if resource.hasPrefix("*/"), let slash = permission.resource.firstIndex(of: "/") {
                return resource.dropFirst(1) == permission.resource[slash...]
            }
            return false
        }
        guard resourceMatches else { return false }
        guard !rule.resourceNames.isEmpty else { return true }
        return permission.name.map(rule.resourceNames.contains) ?? false
    }

    static func missing(_ permissions: [Permission], grantedBy rules: [Rule]) -> [Permission] {
        permissions.filter { permission in !rules.contains { Self.allows($0, permission) } }
    }
}
