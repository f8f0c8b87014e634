import ProxyConfig
import Testing

private let web = "spiffe://cluster.local/ns/shop/sa/web"
private let admin = "spiffe://cluster.local/ns/ops/sa/admin"
private let batch = "spiffe://cluster.local/ns/shop/sa/batch"

private func request(
    _ principal: String?, _ method: String = "GET", _ path: String = "/",
    port: Int = 8080
) -> AuthorizationRequest {
    AuthorizationRequest(principal: principal, method: method, path: path, port: port)
}

private func allow(_ name: String, _ rules: [AuthorizationRule]) -> AuthorizationPolicy {
    AuthorizationPolicy(name: name, action: .allow, rules: rules)
}

private func deny(_ name: String, _ rules: [AuthorizationRule]) -> AuthorizationPolicy {
    AuthorizationPolicy(name: name, action: .deny, rules: rules)
}

@Suite("AuthorizationTable.evaluate")
struct AuthorizationTests {
    @Test("no policies allow everything, plaintext included")
    func noPolicies() {
        let table = AuthorizationTable()
        let expected = AuthorizationDecision(allowed: true, policy: nil, reason: "no policies")
        #expect(table.evaluate(request(web)) == expected)
        #expect(table.evaluate(request(nil)).allowed)
    }

    /// `shop/deny-debug` denies `/debug*`; `shop/allow-web` allows the `web` account.
    static let denyAndAllow = AuthorizationTable(policies: [
        deny("shop/deny-debug", [AuthorizationRule(to: [AuthorizationOperation(paths: ["/debug*"])])]),
        allow("shop/allow-web", [AuthorizationRule(from: [AuthorizationSource(principals: [web])])]),
    ])

    @Test(
        "DENY beats ALLOW; ALLOW-only denies what no ALLOW matches",
        arguments: [
            (
                web, "/debug/pprof",
                AuthorizationDecision(
                    allowed: false, policy: "shop/deny-debug",
                    reason: "denied by shop/deny-debug")
            ),
            (
                web, "/debug?x=1",
                AuthorizationDecision(
                    allowed: false, policy: "shop/deny-debug",
                    reason: "denied by shop/deny-debug")
            ),
            (
                web, "/items",
                AuthorizationDecision(
                    allowed: true, policy: "shop/allow-web",
                    reason: "allowed by shop/allow-web")
            ),
            (batch, "/items", AuthorizationDecision(allowed: false, policy: nil, reason: "no ALLOW policy matched")),
            (nil, "/items", AuthorizationDecision(allowed: false, policy: nil, reason: "no ALLOW policy matched")),
            (
                nil, "/debug",
                AuthorizationDecision(
                    allowed: false, policy: "shop/deny-debug",
                    reason: "denied by shop/deny-debug")
            ),
        ] as [(String?, String, AuthorizationDecision)])
    func denyBeatsAllow(principal: String?, path: String, expected: AuthorizationDecision) {
        #expect(Self.denyAndAllow.evaluate(request(principal, "GET", path)) == expected)
    }

    @Test("DENY beats ALLOW whatever the order of the table")
    func denyBeatsAllowUnsorted() {
        let table = AuthorizationTable(policies: Self.denyAndAllow.policies.reversed())
        #expect(table.evaluate(request(web, "GET", "/debug")).policy == "shop/deny-debug")
    }

    @Test("DENY-only tables allow what no DENY matches")
    func denyOnly() {
        let table = AuthorizationTable(policies: [Self.denyAndAllow.policies[0]])
        #expect(
            table.evaluate(request(batch, "GET", "/items"))
                == AuthorizationDecision(allowed: true, policy: nil, reason: "no DENY policy matched"))
        #expect(!table.evaluate(request(batch, "GET", "/debug")).allowed)
    }

    @Test("a policy with no rules matches nothing")
    func emptyRules() {
        let allowNothing = AuthorizationTable(policies: [allow("shop/allow-nothing", [])])
        #expect(!allowNothing.evaluate(request(web)).allowed)
        #expect(allowNothing.evaluate(request(web)).reason == "no ALLOW policy matched")
        let denyNothing = AuthorizationTable(policies: [deny("shop/deny-nothing", [])])
        #expect(denyNothing.evaluate(request(web)).allowed)
    }

    @Test("a rule with neither from nor to matches everything")
    func emptyRuleMatchesAll() {
        let table = AuthorizationTable(policies: [allow("shop/allow-all", [AuthorizationRule()])])
        #expect(table.evaluate(request(nil, "DELETE", "/anything", port: 1)).policy == "shop/allow-all")
    }

    @Test(
        "principal patterns",
        arguments: [
            ("*", web, true),
            ("*", nil, false),
            (web, web, true),
            (web, batch, false),
            ("spiffe://cluster.local/ns/shop/*", web, true),
            ("spiffe://cluster.local/ns/shop/*", admin, false),
            ("*/sa/admin", admin, true),
            ("*/sa/admin", web, false),
            ("spiffe://cluster.local/ns/shop/sa/web*", web, true),
        ] as [(String, String?, Bool)])
    func principalPatterns(pattern: String, principal: String?, allowed: Bool) {
        let table = AuthorizationTable(policies: [
            allow("shop/p", [AuthorizationRule(from: [AuthorizationSource(principals: [pattern])])])
        ])
        #expect(table.evaluate(request(principal)).allowed == allowed)
    }

    @Test(
        "notPrincipals: the value must match none; plaintext passes",
        arguments: [
            (["*"], web, false),
            (["*"], nil, true),
            ([admin], web, true),
            ([admin], admin, false),
            ([admin, "*/sa/batch"], batch, false),
        ] as [([String], String?, Bool)])
    func notPrincipals(patterns: [String], principal: String?, denied: Bool) {
        let table = AuthorizationTable(policies: [
            deny("shop/require-mtls", [AuthorizationRule(from: [AuthorizationSource(notPrincipals: patterns)])])
        ])
        #expect(table.evaluate(request(principal)).allowed == !denied)
    }

    @Test(
        "namespaces come from the principal",
        arguments: [
            (["shop"], web, true),
            (["shop"], admin, false),
            (["ops", "shop"], admin, true),
            (["sh*"], web, true),
            (["*"], web, true),
            (["*"], nil, false),
            (["shop"], nil, false),
            (["shop"], "spiffe://cluster.local/shop/sa/web", false),
            (["shop"], "spiffe://cluster.local/ns/shopping/sa/web", false),
            (["shop"], "https://cluster.local/ns/shop/sa/web", false),
            (["shop"], "spiffe://other.domain/ns/shop/sa/web", true),
        ] as [([String], String?, Bool)])
    func namespaces(namespaces: [String], principal: String?, allowed: Bool) {
        let table = AuthorizationTable(policies: [
            allow("shop/ns", [AuthorizationRule(from: [AuthorizationSource(namespaces: namespaces)])])
        ])
        #expect(table.evaluate(request(principal)).allowed == allowed)
    }

    @Test(
        "notNamespaces",
        arguments: [
            (web, false),
            (admin, true),
            (nil, true),
        ] as [(String?, Bool)])
    func notNamespaces(principal: String?, allowed: Bool) {
        let table = AuthorizationTable(policies: [
            allow("shop/not-shop", [AuthorizationRule(from: [AuthorizationSource(notNamespaces: ["shop"])])])
        ])
        #expect(table.evaluate(request(principal)).allowed == allowed)
    }

    @Test("every field of a source must hold; any source of a rule may")
    func sourceFields() {
        let table = AuthorizationTable(policies: [
            allow(
                "shop/sources",
                [
                    AuthorizationRule(from: [
                        AuthorizationSource(principals: ["*"], notPrincipals: [batch], namespaces: ["shop"]),
                        AuthorizationSource(principals: [admin]),
                    ])
                ])
        ])
        #expect(table.evaluate(request(web)).allowed)
        #expect(!table.evaluate(request(batch)).allowed)
        #expect(table.evaluate(request(admin)).allowed)
        #expect(!table.evaluate(request("spiffe://cluster.local/ns/ops/sa/other")).allowed)
    }

    @Test(
        "operations: methods, paths, ports and their negations",
        arguments: [
            (AuthorizationOperation(methods: ["GET", "HEAD"]), "GET", "/x", 8080, true),
            (AuthorizationOperation(methods: ["GET"]), "get", "/x", 8080, false),
            (AuthorizationOperation(methods: ["GET"]), "POST", "/x", 8080, false),
            (AuthorizationOperation(notMethods: ["DELETE"]), "GET", "/x", 8080, true),
            (AuthorizationOperation(notMethods: ["DELETE"]), "DELETE", "/x", 8080, false),
            (AuthorizationOperation(paths: ["/items"]), "GET", "/items", 8080, true),
            (AuthorizationOperation(paths: ["/items"]), "GET", "/items?id=1", 8080, true),
            (AuthorizationOperation(paths: ["/items"]), "GET", "/items/1", 8080, false),
            (AuthorizationOperation(paths: ["/items/*"]), "GET", "/items/1", 8080, true),
            (AuthorizationOperation(paths: ["*.png"]), "GET", "/img/a.png", 8080, true),
            (AuthorizationOperation(paths: ["*.png"]), "GET", "/img/a.png?v=2", 8080, true),
            (AuthorizationOperation(paths: ["*.png"]), "GET", "/img/a.jpg", 8080, false),
            (AuthorizationOperation(paths: ["*"]), "GET", "/anything", 8080, true),
            (AuthorizationOperation(notPaths: ["/admin*"]), "GET", "/items", 8080, true),
            (AuthorizationOperation(notPaths: ["/admin*"]), "GET", "/admin/users", 8080, false),
            (AuthorizationOperation(notPaths: ["/admin*", "*.php"]), "GET", "/index.php", 8080, false),
            (AuthorizationOperation(ports: [8080]), "GET", "/", 8080, true),
            (AuthorizationOperation(ports: [8080]), "GET", "/", 9090, false),
            (AuthorizationOperation(notPorts: [9090]), "GET", "/", 8080, true),
            (AuthorizationOperation(notPorts: [9090]), "GET", "/", 9090, false),
            (
                AuthorizationOperation(methods: ["GET"], paths: ["/items*"], ports: [8080]), "GET", "/items/1", 8080,
                true
            ),
            (
                AuthorizationOperation(methods: ["GET"], paths: ["/items*"], ports: [8080]), "GET", "/items/1", 9090,
                false
            ),
        ] as [(AuthorizationOperation, String, String, Int, Bool)])
    func operations(operation: AuthorizationOperation, method: String, path: String, port: Int, allowed: Bool) {
        let table = AuthorizationTable(policies: [allow("shop/op", [AuthorizationRule(to: [operation])])])
        #expect(table.evaluate(request(web, method, path, port: port)).allowed == allowed)
    }

    @Test("a rule needs both a matching source and a matching operation")
    func fromAndTo() {
        let table = AuthorizationTable(policies: [
            allow(
                "shop/web-reads",
                [
                    AuthorizationRule(
                        from: [AuthorizationSource(namespaces: ["shop"])],
                        to: [
                            AuthorizationOperation(methods: ["GET"]),
                            AuthorizationOperation(ports: [9090]),
                        ])
                ]),
            allow("ops/admin", [AuthorizationRule(from: [AuthorizationSource(principals: [admin])])]),
        ])
        #expect(table.evaluate(request(web, "GET")).policy == "shop/web-reads")
        #expect(table.evaluate(request(web, "POST", port: 9090)).policy == "shop/web-reads")
        #expect(!table.evaluate(request(web, "POST")).allowed)
        #expect(table.evaluate(request(admin, "POST")).policy == "ops/admin")
        #expect(!table.evaluate(request(nil, "GET")).allowed)
    }

    @Test("plaintext requests: principal conditions fail, path-only rules still apply")
    func plaintext() {
        let table = AuthorizationTable(policies: [
            allow("shop/health", [AuthorizationRule(to: [AuthorizationOperation(paths: ["/healthz"])])]),
            allow("shop/mesh", [AuthorizationRule(from: [AuthorizationSource(principals: ["*"])])]),
        ])
        #expect(table.evaluate(request(nil, "GET", "/healthz")).policy == "shop/health")
        #expect(!table.evaluate(request(nil, "GET", "/items")).allowed)
        #expect(!table.evaluate(request("", "GET", "/items")).allowed)
        #expect(table.evaluate(request(web, "GET", "/items")).policy == "shop/mesh")
    }
}
