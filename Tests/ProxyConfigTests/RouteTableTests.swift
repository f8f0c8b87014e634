import ProxyConfig
import Testing

// MARK: - Fixtures

private func cluster(_ name: String) -> [WeightedCluster] {
    [WeightedCluster(cluster: name, weight: 100)]
}

private func route(_ name: String, _ matches: [RequestMatch] = [], rewrite: Rewrite? = nil) -> Route {
    Route(name: name, matches: matches, forward: ForwardAction(backends: cluster(name), rewrite: rewrite))
}

private let identity = ProxyIdentity(
    id: "shop/web-0", namespace: "shop", name: "web-0", serviceAccount: "web",
    spiffeID: "spiffe://cluster.local/ns/shop/sa/web", trustDomain: "cluster.local", addresses: ["10.0.0.5"]
)

private func config(_ outbound: [OutboundService]) -> ProxyConfig {
    ProxyConfig(proxy: identity, outbound: outbound)
}

/// `catalog` (one port, many routes), `reviews` (two ports), `ratings` (one port, IPv6 alias), `legacy` (TCP).
private let shopConfig = config([
    OutboundService(
        host: "catalog.shop.svc.cluster.local",
        aliases: ["10.96.0.10", "catalog", "catalog.shop", "catalog.shop.svc"],
        port: 80, protocol: .http1,
        routes: [
            route(
                "shop/catalog/beta",
                [
                    RequestMatch(headers: [NamedMatcher(name: "x-beta", match: .init(.exact, "1"))])
                ]),
            route(
                "shop/catalog/mobile",
                [
                    RequestMatch(headers: [NamedMatcher(name: "user-agent", match: .init(.regex, ".*Mobile.*"))])
                ]),
            route("shop/catalog/api", [RequestMatch(path: .init(.prefix, "/api/"))], rewrite: Rewrite(path: "/")),
            route("shop/catalog/exact", [RequestMatch(path: .init(.exact, "/healthz"))]),
            route("shop/catalog/regex", [RequestMatch(path: .init(.regex, "/items/[0-9]+"))]),
            route("shop/catalog/post", [RequestMatch(method: .init(.exact, "POST"))]),
            route(
                "shop/catalog/query",
                [
                    RequestMatch(queryParams: [NamedMatcher(name: "debug", match: .init(.exact, "true"))])
                ]),
            route("shop/catalog/authority", [RequestMatch(authority: .init(.exact, "catalog.shop"))]),
            route(
                "shop/catalog/either",
                [
                    RequestMatch(path: .init(.exact, "/a")),
                    RequestMatch(path: .init(.exact, "/b")),
                ]),
            route(
                "shop/catalog/all",
                [
                    RequestMatch(
                        path: .init(.prefix, "/all"), method: .init(.exact, "PUT"),
                        headers: [NamedMatcher(name: "x-team", match: .init(.prefix, "pay"))])
                ]),
            route("default"),
        ]
    ),
    OutboundService(
        host: "ratings.shop.svc.cluster.local", aliases: ["fd00::10", "ratings"], port: 8080,
        protocol: .http1,
        routes: [route("shop/ratings/8080", [RequestMatch(port: 8080)]), route("default")]),
    OutboundService(
        host: "reviews.shop.svc.cluster.local", aliases: ["reviews"], port: 9080, protocol: .http1,
        routes: [route("reviews-9080")]),
    OutboundService(
        host: "reviews.shop.svc.cluster.local", aliases: ["reviews"], port: 9081, protocol: .http2,
        routes: [route("reviews-9081", [RequestMatch(path: .init(.prefix, "/v1/"))])]),
    OutboundService(
        host: "legacy.shop.svc.cluster.local", aliases: ["legacy"], port: 5432, protocol: .tcp,
        tcp: TCPRoute(name: "legacy", backends: cluster("legacy"))),
])

// MARK: - Routing

@Suite("RouteTable")
struct RouteTableTests {
    let table: RouteTable

    init() throws {
        self.table = try RouteTable(shopConfig)
    }

    @Test(
        "resolves the service from host, aliases and ports",
        arguments: [
            ("catalog.shop.svc.cluster.local", nil, "catalog.shop.svc.cluster.local:80"),
            ("catalog", nil, "catalog.shop.svc.cluster.local:80"),
            ("catalog.shop.svc", nil, "catalog.shop.svc.cluster.local:80"),
            ("CATALOG.Shop", nil, "catalog.shop.svc.cluster.local:80"),
            ("catalog.shop.svc.cluster.local.", nil, "catalog.shop.svc.cluster.local:80"),
            ("catalog:80", nil, "catalog.shop.svc.cluster.local:80"),
            ("10.96.0.10:80", 80, "catalog.shop.svc.cluster.local:80"),
            ("catalog:8080", nil, "catalog.shop.svc.cluster.local:80"),
            ("reviews:9080", nil, "reviews.shop.svc.cluster.local:9080"),
            ("reviews:9081", nil, "reviews.shop.svc.cluster.local:9081"),
            ("reviews", 9081, "reviews.shop.svc.cluster.local:9081"),
            ("reviews:9080", 9081, "reviews.shop.svc.cluster.local:9080"),
            ("reviews", nil, nil),
            ("reviews:9082", nil, nil),
            // The port as `Int` reads it: a sign, leading zeros, nothing (the request's port then), junk, overflow.
            ("reviews:+9080", nil, "reviews.shop.svc.cluster.local:9080"),
            ("reviews:0009081", nil, "reviews.shop.svc.cluster.local:9081"),
            ("reviews:", 9081, "reviews.shop.svc.cluster.local:9081"),
            ("reviews:9080x", nil, nil),
            ("reviews:-9080", nil, nil),
            ("reviews:9999999999999999999999", 9080, "reviews.shop.svc.cluster.local:9080"),
            ("ratings:1234", nil, "ratings.shop.svc.cluster.local:8080"),
            ("[fd00::10]:8080", nil, "ratings.shop.svc.cluster.local:8080"),
            ("[FD00::10]", nil, "ratings.shop.svc.cluster.local:8080"),
            ("fd00::10", 8080, "ratings.shop.svc.cluster.local:8080"),
            ("legacy:5432", nil, "legacy.shop.svc.cluster.local:5432"),
            ("unknown.shop.svc.cluster.local", nil, nil),
            ("catalog.other", nil, nil),
            ("", nil, nil),
        ] as [(String, Int?, String?)])
    func resolvesService(authority: String, port: Int?, expected: String?) {
        let request = RequestInfo(authority: authority, port: port, path: "/")
        let found = self.table.service(for: request).map { "\($0.host):\($0.port)" }
        #expect(found == expected)
        if let expected, expected.hasPrefix("catalog") {
            #expect(self.table.match(request).map { "\($0.service.host):\($0.service.port)" } == expected)
        }
    }

    @Test(
        "matches paths: exact, prefix, regex full match; the query string is ignored",
        arguments: [
            ("/api/items", "shop/catalog/api"),
            ("/api/", "shop/catalog/api"),
            ("/api", "default"),
            ("/apix/", "default"),
            ("/api/x?y=1", "shop/catalog/api"),
            ("/healthz", "shop/catalog/exact"),
            ("/healthz?full=1", "shop/catalog/exact"),
            ("/healthz/", "default"),
            ("/Healthz", "default"),
            ("/items/42", "shop/catalog/regex"),
            ("/items/42?x=1", "shop/catalog/regex"),
            ("/items/42x", "default"),
            ("/v1/items/42", "default"),
            ("/", "default"),
            ("", "default"),
        ])
    func matchesPaths(path: String, expected: String) {
        let match = self.table.match(RequestInfo(authority: "catalog", path: path))
        #expect(match?.route.name == expected)
    }

    @Test("the first matching route wins")
    func firstMatchWins() throws {
        let request = RequestInfo(
            authority: "catalog", method: "POST", path: "/api/items",
            headers: [(name: "x-beta", value: "1")])
        let match = try #require(self.table.match(request))
        #expect(match.route.name == "shop/catalog/beta")
        #expect(match.routeIndex == 0)
        #expect(match.matchIndex == 0)
        #expect(match.requestMatch == shopConfig.outbound[0].routes[0].matches[0])

        let withoutHeader = RequestInfo(authority: "catalog", method: "POST", path: "/api/items")
        #expect(self.table.match(withoutHeader)?.route.name == "shop/catalog/api")
        #expect(self.table.match(withoutHeader)?.routeIndex == 2)
    }

    @Test("a route matches when any of its matches does")
    func anyRequestMatch() throws {
        let first = try #require(self.table.match(RequestInfo(authority: "catalog", path: "/a")))
        let second = try #require(self.table.match(RequestInfo(authority: "catalog", path: "/b")))
        #expect(first.route.name == "shop/catalog/either")
        #expect(first.matchIndex == 0)
        #expect(second.route.name == "shop/catalog/either")
        #expect(second.matchIndex == 1)
        #expect(second.requestMatch?.path == StringMatcher(.exact, "/b"))
    }

    @Test("a route without matches reports no request match")
    func defaultRouteHasNoRequestMatch() throws {
        let match = try #require(self.table.match(RequestInfo(authority: "catalog", path: "/nothing")))
        #expect(match.route.name == "default")
        #expect(match.routeIndex == 10)
        #expect(match.requestMatch == nil)
        #expect(match.matchIndex == nil)
    }

    @Test(
        "matches methods exactly",
        arguments: [
            ("POST", "shop/catalog/post"),
            ("GET", "default"),
            ("post", "default"),
        ])
    func matchesMethods(method: String, expected: String) {
        #expect(self.table.match(RequestInfo(authority: "catalog", method: method, path: "/x"))?.route.name == expected)
    }

    @Test(
        "matches headers by case-insensitive name; a missing header fails",
        arguments: [
            ([("x-beta", "1")], "shop/catalog/beta"),
            ([("X-Beta", "1")], "shop/catalog/beta"),
            ([("X-BETA", "1")], "shop/catalog/beta"),
            ([("x-beta", "2")], "default"),
            ([("x-beta", "")], "default"),
            ([("x-betax", "1")], "default"),
            ([("x-other", "1")], "default"),
            ([], "default"),
            ([("x-beta", "0"), ("x-beta", "1")], "shop/catalog/beta"),
            ([("User-Agent", "Mozilla/5.0 (iPhone) Mobile/15E148")], "shop/catalog/mobile"),
            ([("user-agent", "curl/8.0")], "default"),
            ([("user-agent", "Mobile")], "shop/catalog/mobile"),
        ] as [([(String, String)], String)])
    func matchesHeaders(headers: [(String, String)], expected: String) {
        let request = RequestInfo(authority: "catalog", path: "/x", headers: headers.map { (name: $0.0, value: $0.1) })
        #expect(self.table.match(request)?.route.name == expected)
    }

    @Test(
        "matches query parameters raw",
        arguments: [
            ("/search?debug=true", "shop/catalog/query"),
            ("/search?a=1&debug=true", "shop/catalog/query"),
            ("/search?debug=true&a=1", "shop/catalog/query"),
            ("/search?debug=false&debug=true", "shop/catalog/query"),
            ("/search?debug=false", "default"),
            ("/search?debug", "default"),
            ("/search?debug=", "default"),
            ("/search?xdebug=true", "default"),
            ("/search?debug=tru", "default"),
            ("/search?debug=true%20", "default"),
            ("/search?", "default"),
            ("/search", "default"),
            ("/search?a=debug=true", "default"),
        ])
    func matchesQueryParams(path: String, expected: String) {
        #expect(self.table.match(RequestInfo(authority: "catalog", path: path))?.route.name == expected)
    }

    @Test(
        "matches the authority host without port",
        arguments: [
            ("catalog.shop", "shop/catalog/authority"),
            ("catalog.shop:80", "shop/catalog/authority"),
            ("Catalog.Shop", "shop/catalog/authority"),
            ("catalog", "default"),
            ("catalog.shop.svc", "default"),
        ])
    func matchesAuthority(authority: String, expected: String) {
        #expect(self.table.match(RequestInfo(authority: authority, path: "/x"))?.route.name == expected)
    }

    @Test(
        "every condition of a match must hold",
        arguments: [
            ("PUT", "/all/x", "payments", "shop/catalog/all"),
            ("GET", "/all/x", "payments", "default"),
            ("PUT", "/x", "payments", "default"),
            ("PUT", "/all/x", "search", "default"),
        ])
    func matchesAllConditions(method: String, path: String, team: String, expected: String) {
        let request = RequestInfo(
            authority: "catalog", method: method, path: path,
            headers: [(name: "x-team", value: team)])
        #expect(self.table.match(request)?.route.name == expected)
    }

    @Test(
        "matches the port: authority port, else the listener port, else 80",
        arguments: [
            ("ratings:8080", nil, "shop/ratings/8080"),
            ("ratings", 8080, "shop/ratings/8080"),
            ("ratings:1234", 8080, "default"),
            ("ratings", nil, "default"),
            ("[fd00::10]:8080", nil, "shop/ratings/8080"),
        ] as [(String, Int?, String)])
    func matchesPort(authority: String, port: Int?, expected: String) {
        #expect(self.table.match(RequestInfo(authority: authority, port: port, path: "/"))?.route.name == expected)
    }

    @Test(
        "no service or no matching route gives nil",
        arguments: [
            ("unknown", "/"),
            ("reviews:9081", "/v2/x"),
            ("reviews", "/v1/x"),
            ("legacy:5432", "/"),
        ])
    func noMatch(authority: String, path: String) {
        #expect(self.table.match(RequestInfo(authority: authority, path: path)) == nil)
    }

    @Test("one table serves many concurrent callers")
    func concurrentMatching() async {
        let table = self.table
        let names = await withTaskGroup(of: [String?].self) { group in
            for _ in 0..<8 {
                group.addTask {
                    (0..<200).map { index in
                        table.match(RequestInfo(authority: "catalog", path: "/items/\(index)"))?.route.name
                    }
                }
            }
            var all: [String?] = []
            for await names in group {
                all += names
            }
            return all
        }
        #expect(names.count == 1600)
        #expect(names.allSatisfy { $0 == "shop/catalog/regex" })
    }

    @Test("an empty config routes nothing")
    func emptyConfig() throws {
        let table = try RouteTable(config([]))
        #expect(table.match(RequestInfo(authority: "catalog")) == nil)
    }

    @Test("the table says whether any route matches on a header (else requests need not carry theirs)")
    func matchesHeadersFlag() throws {
        #expect(try RouteTable(shopConfig).matchesHeaders)
        let plain = config([
            OutboundService(
                host: "catalog.shop.svc.cluster.local", aliases: [], port: 80, protocol: .http1,
                routes: [route("a", [RequestMatch(path: .init(.prefix, "/a"))]), route("rest")])
        ])
        #expect(try !RouteTable(plain).matchesHeaders)
        #expect(try !RouteTable(config([])).matchesHeaders)
    }
}

// MARK: - Invalid configs

@Suite("RouteTable rejects invalid regexes")
struct RouteTableInvalidTests {
    @Test(
        "an invalid regex makes init throw",
        arguments: [
            RequestMatch(path: .init(.regex, "([")),
            RequestMatch(method: .init(.regex, "(GET")),
            RequestMatch(authority: .init(.regex, "[a-")),
            RequestMatch(headers: [NamedMatcher(name: "x-a", match: .init(.regex, "(["))]),
            RequestMatch(queryParams: [NamedMatcher(name: "q", match: .init(.regex, "(["))]),
        ])
    func invalidRegexThrows(match: RequestMatch) throws {
        let bad = config([
            OutboundService(
                host: "catalog.shop.svc.cluster.local", aliases: [], port: 80, protocol: .http1,
                routes: [
                    route("shop/catalog/ok", [RequestMatch(path: .init(.regex, "/ok.*"))]),
                    route("shop/catalog/beta", [match]),
                ])
        ])
        let error = try #require(throws: ProxyConfigError.self) { try RouteTable(bad) }
        #expect(error.code == ProxyConfigError.invalidRegex)
        #expect(error.message.hasPrefix("route shop/catalog/beta: invalid regex \""))
    }

    @Test("the message names the route and the pattern")
    func invalidRegexMessage() throws {
        let bad = config([
            OutboundService(
                host: "catalog", aliases: [], port: 80, protocol: .http1,
                routes: [route("shop/catalog/beta", [RequestMatch(path: .init(.regex, "(["))])])
        ])
        let error = try #require(throws: ProxyConfigError.self) { try RouteTable(bad) }
        #expect(error.message.hasPrefix("route shop/catalog/beta: invalid regex \"([\": "))
        #expect(error.description.hasPrefix("invalid_regex: route shop/catalog/beta"))
    }
}

// MARK: - Weighted choice

@Suite("Weighted backend choice")
struct WeightedChoiceTests {
    @Test(
        "every roll in 0..<total picks each backend exactly weight times",
        arguments: [
            [90, 10],
            [50, 50],
            [1, 0, 99],
            [0, 100],
            [100, 0],
            [33, 33, 34],
            [20, 20, 20, 20, 20],
            [25, 0, 0, 75],
        ])
    func distribution(weights: [Int]) {
        let backends = weights.enumerated().map { WeightedCluster(cluster: "c\($0.offset)", weight: $0.element) }
        let forward = ForwardAction(backends: backends)
        let tcp = TCPRoute(name: "t", backends: backends)
        #expect(forward.totalWeight == 100)
        #expect(tcp.totalWeight == 100)
        var counts: [String: Int] = [:]
        var tcpCounts: [String: Int] = [:]
        for roll in 0..<100 {
            if let picked = forward.pickBackend(roll: roll) {
                counts[picked.cluster, default: 0] += 1
            }
            if let picked = tcp.pickBackend(roll: roll) {
                tcpCounts[picked.cluster, default: 0] += 1
            }
        }
        for backend in backends {
            #expect(counts[backend.cluster, default: 0] == backend.weight)
            #expect(tcpCounts[backend.cluster, default: 0] == backend.weight)
        }
        #expect(forward.pickBackend(roll: 100) == nil)
        #expect(forward.pickBackend(roll: -1) == nil)
        #expect(tcp.pickBackend(roll: 100) == nil)
    }

    @Test("a zero-weight backend is never chosen")
    func zeroWeightNeverChosen() {
        let forward = ForwardAction(backends: [
            WeightedCluster(cluster: "zero-first", weight: 0),
            WeightedCluster(cluster: "v1", weight: 3),
            WeightedCluster(cluster: "zero-middle", weight: 0),
            WeightedCluster(cluster: "v2", weight: 1),
            WeightedCluster(cluster: "negative", weight: -5),
        ])
        #expect(forward.totalWeight == 4)
        let picked = (0..<forward.totalWeight).compactMap { forward.pickBackend(roll: $0)?.cluster }
        #expect(picked == ["v1", "v1", "v1", "v2"])
    }

    @Test("no backends or no weight picks nothing")
    func noWeight() {
        #expect(ForwardAction(backends: []).totalWeight == 0)
        #expect(ForwardAction(backends: []).pickBackend(roll: 0) == nil)
        let zero = TCPRoute(name: "t", backends: [WeightedCluster(cluster: "a", weight: 0)])
        #expect(zero.totalWeight == 0)
        #expect(zero.pickBackend(roll: 0) == nil)
    }

    @Test("relative weights need not sum to 100")
    func relativeWeights() {
        let forward = ForwardAction(backends: [
            WeightedCluster(cluster: "a", weight: 1),
            WeightedCluster(cluster: "b", weight: 2),
        ])
        #expect(forward.totalWeight == 3)
        #expect((0..<3).map { forward.pickBackend(roll: $0)?.cluster } == ["a", "b", "b"])
    }
}

// MARK: - Rewrite

@Suite("Path rewrite")
struct RewriteTests {
    @Test(
        "prefix matches replace the prefix; others the whole path; the query is kept",
        arguments: [
            ("/api/items?x=1", RequestMatch(path: .init(.prefix, "/api/")), "/", "/items?x=1"),
            ("/api/items", RequestMatch(path: .init(.prefix, "/api")), "/v2", "/v2/items"),
            ("/api", RequestMatch(path: .init(.prefix, "/api")), "/v2", "/v2"),
            ("/api?q", RequestMatch(path: .init(.prefix, "/api")), "/v2", "/v2?q"),
            ("/healthz?full", RequestMatch(path: .init(.exact, "/healthz")), "/status", "/status?full"),
            ("/items/42", RequestMatch(path: .init(.regex, "/items/[0-9]+")), "/item", "/item"),
            ("/x?q=1&r=2", RequestMatch(method: .init(.exact, "GET")), "/y", "/y?q=1&r=2"),
            ("/x?q", nil, "/y", "/y?q"),
            ("/other/x", RequestMatch(path: .init(.prefix, "/api/")), "/", "/"),
        ] as [(String, RequestMatch?, String, String)])
    func rewritesPath(path: String, matched: RequestMatch?, replacement: String, expected: String) {
        #expect(rewrittenPath(path, matched: matched, rewrite: Rewrite(path: replacement)) == expected)
    }

    @Test("a rewrite without a path keeps the path")
    func noPathRewrite() {
        let matched = RequestMatch(path: .init(.prefix, "/api/"))
        #expect(rewrittenPath("/api/x?y", matched: matched, rewrite: Rewrite(authority: "other")) == "/api/x?y")
    }

    @Test("rewrite with the request match the table returns")
    func rewriteFromMatch() throws {
        let table = try RouteTable(shopConfig)
        let path = "/api/items/7?fields=name"
        let match = try #require(table.match(RequestInfo(authority: "catalog", path: path)))
        let rewrite = try #require(match.route.forward?.rewrite)
        #expect(rewrittenPath(path, matched: match.requestMatch, rewrite: rewrite) == "/items/7?fields=name")
    }
}

// MARK: - Encoding

@Suite("ProxyConfig encoding and version")
struct ProxyConfigEncodingTests {
    @Test("encoding is deterministic")
    func deterministic() throws {
        let first = try shopConfig.encoded()
        let second = try shopConfig.encoded()
        #expect(first == second)
        let copy = try ProxyConfig.decode(first)
        #expect(copy == shopConfig)
        #expect(try copy.encoded() == first)
    }

    @Test("versioned() sets the content hash, stable when the content is")
    func versionStable() throws {
        let versioned = try shopConfig.versioned()
        #expect(versioned.version.count == 16)
        #expect(versioned.version.allSatisfy { $0.isHexDigit })
        #expect(try shopConfig.versioned().version == versioned.version)
        #expect(try versioned.versioned() == versioned)
        var renamed = shopConfig
        renamed.version = "something else"
        #expect(try renamed.versioned().version == versioned.version)
    }

    @Test("versioned() changes the version when the content changes")
    func versionChanges() throws {
        let base = try shopConfig.versioned().version
        var changedRoute = shopConfig
        changedRoute.outbound[0].routes[0].name = "shop/catalog/gamma"
        var changedProxy = shopConfig
        changedProxy.proxy.zone = "zone-a"
        var reordered = shopConfig
        reordered.outbound.swapAt(1, 2)
        let versions = try [changedRoute, changedProxy, reordered].map { try $0.versioned().version }
        for version in versions {
            #expect(version != base)
        }
        #expect(Set(versions).count == versions.count)
    }
}
