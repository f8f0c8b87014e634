import Foundation
import ProxyConfig
import Testing
import WeftTesting

/// Requests sent through compiled proxy configs with the proxy's own matcher and authorizer.
@Suite("Simulation of the shop example")
struct ShopSimulationTests {
    /// `manifests/examples` of the repository, found from this file.
    static let examples = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("manifests")
        .appendingPathComponent("examples")
        .path

    static let frontend = "shop/frontend-6d8f7b9c4-x2k7p"
    static let payments = "shop/payments-84c6b5d7f9-h4j2v"
    static let catalog = "shop/catalog-v1-7c9f8d6b5-w4rzn"

    static let catalogV1 = "outbound|80|v1|catalog.shop.svc.cluster.local"
    static let catalogV2 = "outbound|80|v2|catalog.shop.svc.cluster.local"
    static let payments8080 = "outbound|8080||payments.shop.svc.cluster.local"
    static let payments9090 = "outbound|9090||payments.shop.svc.cluster.local"

    static let frontendID = "spiffe://cluster.local/ns/shop/sa/frontend"
    static let catalogID = "spiffe://cluster.local/ns/shop/sa/catalog"

    let sim = Simulation(path: ShopSimulationTests.examples)

    @Test("the examples load without problems and compile without errors")
    func loads() {
        #expect(self.sim.problems.isEmpty, "\(self.sim.problems.map(\.description))")
        #expect(!self.sim.result.hasErrors, "\(self.sim.result.diagnostics.map(\.description))")
        #expect(self.sim.result.proxies[Self.frontend] != nil)
    }

    @Test("beta users on /api go to catalog v2")
    func betaUsers() throws {
        let outcome = try self.sim.call(
            from: Self.frontend, to: "catalog", path: "/api/items",
            headers: [("x-beta", "1")])
        #expect(outcome.route == "shop/catalog/beta-users")
        #expect(outcome.cluster == Self.catalogV2)
        #expect(outcome.backends == [Self.catalogV2: 100])
    }

    @Test("the beta route needs both the header and the /api prefix")
    func betaNeedsBoth() throws {
        let wrongPath = try self.sim.call(
            from: Self.frontend, to: "catalog", path: "/items", headers: [("x-beta", "1")])
        #expect(wrongPath.route == "shop/catalog/default")
        let wrongValue = try self.sim.call(
            from: Self.frontend, to: "catalog", path: "/api/items",
            headers: [("x-beta", "2")])
        #expect(wrongValue.route == "shop/catalog/default")
    }

    @Test("everyone else is split 90/10 between v1 and v2")
    func canarySplit() throws {
        var counts: [String: Int] = [:]
        for roll in 0..<100 {
            let outcome = try self.sim.call(from: Self.frontend, to: "catalog", path: "/api/items", roll: roll)
            #expect(outcome.route == "shop/catalog/default")
            counts[outcome.cluster ?? "none", default: 0] += 1
        }
        #expect(counts == [Self.catalogV1: 90, Self.catalogV2: 10])
    }

    @Test(
        "the default catalog route carries the timeout and retries",
        arguments: [
            "catalog", "catalog.shop", "catalog.shop.svc", "catalog.shop.svc.cluster.local",
            "catalog.shop.svc.cluster.local:80", "10.96.34.17", "10.96.34.17:80",
        ])
    func catalogNames(_ authority: String) throws {
        let outcome = try self.sim.call(from: Self.frontend, to: authority, path: "/")
        #expect(outcome.route == "shop/catalog/default")
        #expect(outcome.backends == [Self.catalogV1: 90, Self.catalogV2: 10])
        #expect(outcome.forward?.timeoutMs == 2000)
        #expect(outcome.forward?.retry?.attempts == 2)
    }

    @Test("payments picks port 9090 for gRPC paths and 8080 for everything else")
    func paymentsByPath() throws {
        let grpc = try self.sim.call(
            from: Self.frontend, to: "payments:8080", method: "POST",
            path: "/payments.v1.Payments/Charge")
        #expect(grpc.route == "shop/payments/grpc")
        #expect(grpc.cluster == Self.payments9090)
        let http = try self.sim.call(
            from: Self.frontend, to: "payments.shop.svc.cluster.local:8080", method: "POST",
            path: "/pay/42")
        #expect(http.route == "shop/payments/default")
        #expect(http.cluster == Self.payments8080)
        #expect(http.forward?.retry?.retryOn == ["connect-failure", "gateway-error"])
    }

    @Test("an unknown host matches nothing", arguments: ["unknown", "unknown.shop.svc.cluster.local", "10.96.0.1"])
    func unknownHost(_ authority: String) throws {
        let outcome = try self.sim.call(from: Self.frontend, to: authority, path: "/")
        #expect(outcome.route == nil)
        #expect(outcome.cluster == nil)
        #expect(outcome.backends.isEmpty)
    }

    @Test("a port the Service does not have matches nothing when the name has several ports")
    func unknownPort() throws {
        let outcome = try self.sim.call(from: Self.frontend, to: "payments:7777", path: "/pay/1")
        #expect(outcome.route == nil)
    }

    @Test("payments on 8080 admits the frontend's POST to /pay/*")
    func paymentsAllowsFrontend() throws {
        let decision = try self.sim.authorize(
            at: Self.payments, port: 8080, principal: Self.frontendID,
            method: "POST", path: "/pay/x")
        #expect(decision.allowed)
        #expect(decision.policy == "shop/payments-allow-frontend")
    }

    @Test("payments on 8080 refuses other identities, other paths and plaintext")
    func paymentsDeniesOthers() throws {
        let catalog = try self.sim.authorize(
            at: Self.payments, port: 8080, principal: Self.catalogID,
            method: "POST", path: "/pay/x")
        #expect(!catalog.allowed)
        #expect(catalog.reason == "no ALLOW policy matched")
        let plaintext = try self.sim.authorize(
            at: Self.payments, port: 8080, principal: nil, method: "POST",
            path: "/pay/x")
        #expect(!plaintext.allowed)
        let otherPath = try self.sim.authorize(
            at: Self.payments, port: 8080, principal: Self.frontendID,
            method: "POST", path: "/admin")
        #expect(!otherPath.allowed)
        let otherMethod = try self.sim.authorize(
            at: Self.payments, port: 8080, principal: Self.frontendID,
            method: "DELETE", path: "/pay/x")
        #expect(!otherMethod.allowed)
    }

    @Test("deny-debug refuses /debug/* at catalog to everyone, and nothing else")
    func denyDebug() throws {
        for principal in [Self.frontendID, Self.catalogID, nil] {
            let decision = try self.sim.authorize(
                at: Self.catalog, port: 8080, principal: principal,
                path: "/debug/x")
            #expect(!decision.allowed)
            #expect(decision.policy == "shop/deny-debug")
        }
        let normal = try self.sim.authorize(
            at: Self.catalog, port: 8080, principal: Self.frontendID,
            path: "/api/items")
        #expect(normal.allowed)
    }
}

@Suite("Simulation of inline manifests")
struct InlineSimulationTests {
    /// `shop` owns catalog (v1 for everyone); `beta` overrides it for its own clients (v2); `gamma` does not.
    static let consumerOverride = """
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop, labels: {weft.dev/inject: enabled}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: beta, labels: {weft.dev/inject: enabled}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: gamma, labels: {weft.dev/inject: enabled}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: client, namespace: beta, labels: {app: client}}
        spec: {containers: [{name: app, image: client}]}
        status: {phase: Running, podIP: 10.0.1.1, conditions: [{type: Ready, status: "True"}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: client, namespace: gamma, labels: {app: client}}
        spec: {containers: [{name: app, image: client}]}
        status: {phase: Running, podIP: 10.0.2.1, conditions: [{type: Ready, status: "True"}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: catalog-v1, namespace: shop, labels: {app: catalog, version: v1}}
        spec: {containers: [{name: app, image: catalog, ports: [{name: http, containerPort: 8080}]}]}
        status: {phase: Running, podIP: 10.0.0.1, conditions: [{type: Ready, status: "True"}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: catalog-v2, namespace: shop, labels: {app: catalog, version: v2}}
        spec: {containers: [{name: app, image: catalog, ports: [{name: http, containerPort: 8080}]}]}
        status: {phase: Running, podIP: 10.0.0.2, conditions: [{type: Ready, status: "True"}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: catalog, namespace: shop}
        spec:
          clusterIP: 10.96.0.10
          selector: {app: catalog}
          ports: [{name: http, port: 80, targetPort: 8080}]
        ---
        apiVersion: weft.dev/v1alpha1
        kind: DestinationPolicy
        metadata: {name: catalog, namespace: shop}
        spec:
          host: catalog
          subsets:
          - {name: v1, labels: {version: v1}}
          - {name: v2, labels: {version: v2}}
        ---
        apiVersion: weft.dev/v1alpha1
        kind: VirtualService
        metadata: {name: catalog, namespace: shop}
        spec:
          hosts: [catalog]
          http:
          - route: [{destination: {host: catalog, subset: v1}}]
        ---
        apiVersion: weft.dev/v1alpha1
        kind: VirtualService
        metadata: {name: catalog, namespace: beta}
        spec:
          hosts: [catalog.shop]
          http:
          - match: [{uri: {prefix: /new}}]
            route: [{destination: {host: catalog.shop, subset: v2}}]
          - route: [{destination: {host: catalog.shop, subset: v1}}]
        """

    static let redirects = """
        apiVersion: v1
        kind: Namespace
        metadata: {name: web, labels: {weft.dev/inject: enabled}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: client, namespace: web, labels: {app: client}}
        spec: {containers: [{name: app, image: client}]}
        status: {phase: Running, podIP: 10.1.0.1, conditions: [{type: Ready, status: "True"}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: site-0, namespace: web, labels: {app: site}}
        spec: {containers: [{name: app, image: site, ports: [{name: http, containerPort: 8080}]}]}
        status: {phase: Running, podIP: 10.1.0.2, conditions: [{type: Ready, status: "True"}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: site, namespace: web}
        spec:
          clusterIP: 10.96.1.10
          selector: {app: site}
          ports: [{name: http, port: 80, targetPort: 8080}]
        ---
        apiVersion: weft.dev/v1alpha1
        kind: VirtualService
        metadata: {name: site, namespace: web}
        spec:
          hosts: [site]
          http:
          - name: old-docs
            match: [{uri: {prefix: /docs/v1/}}]
            redirect: {uri: /docs/v2/, authority: docs.example.com, scheme: https, redirectCode: 308}
          - name: moved
            match: [{uri: {exact: /home.html}}]
            redirect: {uri: /}
          - name: default
            route: [{destination: {host: site}}]
        """

    @Test("a consumer's VirtualService wins for its own namespace only")
    func consumerOverride() throws {
        let sim = Simulation(yaml: Self.consumerOverride)
        #expect(sim.problems.isEmpty, "\(sim.problems.map(\.description))")
        #expect(!sim.result.hasErrors, "\(sim.result.diagnostics.map(\.description))")
        let v1 = "outbound|80|v1|catalog.shop.svc.cluster.local"
        let v2 = "outbound|80|v2|catalog.shop.svc.cluster.local"

        let betaNew = try sim.call(from: "beta/client", to: "catalog.shop", path: "/new/item")
        #expect(betaNew.route == "beta/catalog/0")
        #expect(betaNew.cluster == v2)
        let betaOld = try sim.call(from: "beta/client", to: "catalog.shop", path: "/old")
        #expect(betaOld.route == "beta/catalog/1")
        #expect(betaOld.cluster == v1)

        let gamma = try sim.call(from: "gamma/client", to: "catalog.shop", path: "/new/item")
        #expect(gamma.route == "shop/catalog/0")
        #expect(gamma.cluster == v1)

        // The short name resolves only inside the Service's namespace.
        #expect(try sim.call(from: "gamma/client", to: "catalog", path: "/").route == nil)
        #expect(try sim.call(from: "beta/client", to: "catalog", path: "/").route == nil)

        let status = sim.result.statuses.first { $0.key.description == "beta/VirtualService/catalog" }?.value
        #expect(status?.affectedProxies == ["beta/*"])
    }

    @Test("redirect routes answer with a redirect and pick no cluster")
    func redirects() throws {
        let sim = Simulation(yaml: Self.redirects)
        #expect(sim.problems.isEmpty, "\(sim.problems.map(\.description))")
        #expect(!sim.result.hasErrors, "\(sim.result.diagnostics.map(\.description))")

        let docs = try sim.call(from: "web/client", to: "site", path: "/docs/v1/install?lang=en")
        #expect(docs.route == "web/site/old-docs")
        #expect(docs.cluster == nil)
        #expect(docs.forward == nil)
        #expect(
            docs.redirect
                == RedirectAction(
                    path: "/docs/v2/", authority: "docs.example.com", scheme: "https",
                    statusCode: 308))

        let moved = try sim.call(from: "web/client", to: "site.web.svc.cluster.local", path: "/home.html")
        #expect(moved.route == "web/site/moved")
        #expect(moved.redirect == RedirectAction(path: "/", statusCode: 301))

        // An exact match does not match a longer path.
        let page = try sim.call(from: "web/client", to: "site", path: "/home.html/extra")
        #expect(page.route == "web/site/default")
        #expect(page.redirect == nil)
        #expect(page.cluster == "outbound|80||site.web.svc.cluster.local")
    }
}
