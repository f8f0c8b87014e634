import KubeModel
import Testing
import WeftAPI

typealias VSCase = ValidationCase<VirtualService>

/// Expected messages that many cases share.
func between(_ lower: Int, _ upper: Int, got value: String) -> String {
    "must be between \(lower) and \(upper), got \(value)"
}

func dnsLabelMessage(_ value: String) -> String {
    "must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit, "
        + "at most 63 characters), got \"\(value)\""
}

func invalidDuration(_ value: String) -> String {
    "invalid duration \"\(value)\": use a number with a unit, e.g. 500ms or 2s"
}

let exactlyOneMatch = "set exactly one of exact, prefix or regex"

/// Edits of the valid catalog VirtualService (http[0] beta-users, http[1] the 90/10 split, tcp[0]).
let virtualServiceCases: [VSCase] = [
    // Metadata (shared by every kind).
    VSCase("name missing", "metadata.name", "must be set") { $0.metadata.name = nil },
    VSCase(
        "name not a subdomain", "metadata.name",
        "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter "
            + "or digit, at most 253 characters), got \"Catalog_1\""
    ) { $0.metadata.name = "Catalog_1" },
    VSCase("namespace missing", "metadata.namespace", "must be set") { $0.metadata.namespace = nil },
    VSCase("namespace empty", "metadata.namespace", "must be set") { $0.metadata.namespace = "" },
    // Hosts.
    VSCase("no hosts", "spec.hosts", "must list at least one host") { $0.spec.hosts = [] },
    VSCase("duplicate host", "spec.hosts[1]", "duplicate host \"catalog\"") { $0.spec.hosts = ["catalog", "catalog"] },
    VSCase("wildcard host", "spec.hosts[0]", "wildcards are not allowed, got \"*.shop\"") {
        $0.spec.hosts = ["*.shop"]
    },
    VSCase("host with port", "spec.hosts[0]", "must not include a port, got \"catalog:80\"") {
        $0.spec.hosts = ["catalog:80"]
    },
    VSCase("uppercase host", "spec.hosts[0]", "must be lowercase, got \"Catalog\"") { $0.spec.hosts = ["Catalog"] },
    VSCase(
        "host with underscore", "spec.hosts[0]",
        "must be a DNS name such as catalog, catalog.shop or catalog.shop.svc.cluster.local, got \"cat_alog\""
    ) {
        $0.spec.hosts = ["cat_alog"]
    },
    // Route or redirect.
    VSCase(
        "route and redirect",
        [
            FieldError("spec.http[0]", "set either route or redirect, not both")
        ]
    ) { $0.spec.http?[0].redirect = .init() },
    VSCase("neither route nor redirect", "spec.http[0]", "must set route or redirect") { $0.spec.http?[0].route = nil },
    VSCase("empty route", "spec.http[0].route", "must not be empty") { $0.spec.http?[0].route = [] },
    // Weights.
    VSCase("weights sum to 90", "spec.http[1].route", "weights must sum to 100, got 90") {
        $0.spec.http?[1].route?[1].weight = nil
    },
    VSCase(
        "weights out of range",
        [
            FieldError("spec.http[1].route[0].weight", between(0, 100, got: "120")),
            FieldError("spec.http[1].route[1].weight", between(0, 100, got: "-20")),
        ]
    ) {
        $0.spec.http?[1].route?[0].weight = 120
        $0.spec.http?[1].route?[1].weight = -20
    },
    VSCase("single weight not 100", "spec.http[0].route", "weights must sum to 100, got 50") {
        $0.spec.http?[0].route?[0].weight = 50
    },
    VSCase("two destinations without weights", "spec.http[0].route", "weights must sum to 100, got 0") {
        $0.spec.http?[0].route?.append(.init(destination: .init(host: "catalog", subset: "v1")))
    },
    // Destinations.
    VSCase(
        "destination host", "spec.http[2].route[0].destination.host",
        "must not include a port, got \"catalog:8080\""
    ) {
        var route = weft.v1alpha1.HTTPRoute()
        route.route = [.init(destination: .init(host: "catalog:8080"))]
        $0.spec.http?.append(route)
    },
    VSCase("destination host empty", "spec.http[0].route[0].destination.host", "must be set") {
        $0.spec.http?[0].route?[0].destination.host = ""
    },
    VSCase("destination port", "spec.http[0].route[0].destination.port.number", between(1, 65535, got: "0")) {
        $0.spec.http?[0].route?[0].destination.port = .init(number: 0)
    },
    VSCase("destination subset", "spec.http[0].route[0].destination.subset", dnsLabelMessage("V2")) {
        $0.spec.http?[0].route?[0].destination.subset = "V2"
    },
    VSCase("duplicate route name", "spec.http[1].name", "duplicate route name \"beta-users\"") {
        $0.spec.http?[1].name = "beta-users"
    },
    // Matches.
    VSCase("uri exact and prefix", "spec.http[0].match[0].uri", exactlyOneMatch) {
        $0.spec.http?[0].match?[0].uri = .init(exact: "/a", prefix: "/a")
    },
    VSCase("empty header match", "spec.http[0].match[0].headers.x-beta", exactlyOneMatch) {
        $0.spec.http?[0].match?[0].headers = ["x-beta": .init()]
    },
    VSCase("query param match", "spec.http[0].match[0].queryParams.debug", exactlyOneMatch) {
        $0.spec.http?[0].match?[0].queryParams = ["debug": .init(exact: "1", regex: "1")]
    },
    VSCase("authority match", "spec.http[0].match[0].authority", exactlyOneMatch) {
        $0.spec.http?[0].match?[0].authority = .init()
    },
    VSCase("uri prefix without slash", "spec.http[0].match[0].uri.prefix", "must start with \"/\", got \"api\"") {
        $0.spec.http?[0].match?[0].uri = .init(prefix: "api")
    },
    VSCase("uri exact without slash", "spec.http[0].match[0].uri.exact", "must start with \"/\", got \"api\"") {
        $0.spec.http?[0].match?[0].uri = .init(exact: "api")
    },
    VSCase(
        "uppercase header name", "spec.http[1].match[0].headers.X-Beta",
        "header name must be lowercase, got \"X-Beta\""
    ) {
        var match = weft.v1alpha1.HTTPMatchRequest()
        match.headers = ["X-Beta": .init(exact: "1")]
        $0.spec.http?[1].match = [match]
    },
    VSCase(
        "header name with space", "spec.http[0].match[0].headers.x beta",
        "header name may contain only a-z, 0-9 and !#$%&'*+-.^_`|~, got \"x beta\""
    ) {
        $0.spec.http?[0].match?[0].headers = ["x beta": .init(exact: "1")]
    },
    VSCase(
        "lowercase method", "spec.http[0].match[0].method.exact",
        "must be an uppercase HTTP method such as GET or POST, got \"get\""
    ) {
        $0.spec.http?[0].match?[0].method = .init(exact: "get")
    },
    VSCase("match port", "spec.http[0].match[0].port", between(1, 65535, got: "70000")) {
        $0.spec.http?[0].match?[0].port = 70000
    },
    // Timeouts and retries.
    VSCase("bad timeout", "spec.http[1].timeout", invalidDuration("2x")) { $0.spec.http?[1].timeout = "2x" },
    VSCase("zero timeout", "spec.http[1].timeout", "must be greater than 0, got \"0s\"") {
        $0.spec.http?[1].timeout = "0s"
    },
    VSCase("bad perTryTimeout", "spec.http[1].retries.perTryTimeout", invalidDuration("5")) {
        $0.spec.http?[1].retries?.perTryTimeout = "5"
    },
    VSCase(
        "perTryTimeout above timeout", "spec.http[1].retries.perTryTimeout",
        "must not exceed timeout (2s), got 3s"
    ) { $0.spec.http?[1].retries?.perTryTimeout = "3s" },
    VSCase("attempts above 100", "spec.http[1].retries.attempts", between(0, 100, got: "101")) {
        $0.spec.http?[1].retries?.attempts = 101
    },
    VSCase(
        "unknown retryOn", "spec.http[1].retries.retryOn",
        "unknown retry condition \"bogus\": use 5xx, gateway-error, reset, connect-failure, retriable-4xx, "
            + "refused-stream, cancelled, deadline-exceeded, unavailable, resource-exhausted, internal "
            + "or an HTTP status code 100-599"
    ) { $0.spec.http?[1].retries?.retryOn = "5xx,bogus" },
    VSCase(
        "retryOn status out of range",
        [
            FieldError(
                "spec.http[1].retries.retryOn",
                "unknown retry condition \"600\": use 5xx, gateway-error, "
                    + "reset, connect-failure, retriable-4xx, refused-stream, cancelled, deadline-exceeded, unavailable, "
                    + "resource-exhausted, internal or an HTTP status code 100-599")
        ]
    ) { $0.spec.http?[1].retries?.retryOn = "503, retriable-4xx,600" },
    VSCase(
        "bad backoff",
        [
            FieldError("spec.http[1].retries.backoff.baseInterval", invalidDuration("fast")),
            FieldError("spec.http[1].retries.backoff.maxInterval", "must be greater than 0, got \"0ms\""),
        ]
    ) { $0.spec.http?[1].retries?.backoff = .init(baseInterval: "fast", maxInterval: "0ms") },
    VSCase(
        "backoff base above max", "spec.http[1].retries.backoff.baseInterval",
        "must not exceed maxInterval (100ms), got 1s"
    ) {
        $0.spec.http?[1].retries?.backoff = .init(baseInterval: "1s", maxInterval: "100ms")
    },
    // Fault injection.
    VSCase(
        "fault delay",
        [
            FieldError("spec.http[1].fault.delay.percentage", between(0, 100, got: "150")),
            FieldError("spec.http[1].fault.delay.fixedDelay", invalidDuration("soon")),
        ]
    ) { $0.spec.http?[1].fault = .init(delay: .init(percentage: 150, fixedDelay: "soon")) },
    VSCase(
        "fault abort",
        [
            FieldError("spec.http[1].fault.abort.percentage", between(0, 100, got: "-0.5")),
            FieldError("spec.http[1].fault.abort.httpStatus", between(200, 599, got: "100")),
        ]
    ) { $0.spec.http?[1].fault = .init(abort: .init(percentage: -0.5, httpStatus: 100)) },
    VSCase("empty fault", "spec.http[1].fault", "must set delay or abort") { $0.spec.http?[1].fault = .init() },
    // Mirror.
    VSCase("mirrorPercentage without mirror", "spec.http[1].mirrorPercentage", "may only be set together with mirror") {
        $0.spec.http?[1].mirrorPercentage = 5
    },
    VSCase(
        "mirror",
        [
            FieldError("spec.http[1].mirror.host", "must be lowercase, got \"Shadow\""),
            FieldError("spec.http[1].mirrorPercentage", between(0, 100, got: "100.5")),
        ]
    ) {
        $0.spec.http?[1].mirror = .init(host: "Shadow")
        $0.spec.http?[1].mirrorPercentage = 100.5
    },
    // Redirect and rewrite.
    VSCase(
        "redirect fields",
        [
            FieldError("spec.http[0].redirect.uri", "must start with \"/\", got \"new\""),
            FieldError("spec.http[0].redirect.port", between(1, 65535, got: "0")),
            FieldError("spec.http[0].redirect.scheme", "must be one of http, https, got \"ftp\""),
            FieldError("spec.http[0].redirect.redirectCode", "must be one of 301, 302, 303, 307, 308, got 300"),
        ]
    ) {
        var redirect = weft.v1alpha1.HTTPRedirect()
        redirect.uri = "new"
        redirect.port = 0
        redirect.scheme = "ftp"
        redirect.redirectCode = 300
        $0.spec.http?[0].route = nil
        $0.spec.http?[0].redirect = redirect
    },
    VSCase("rewrite with redirect", "spec.http[0].rewrite", "cannot be used with redirect") {
        var redirect = weft.v1alpha1.HTTPRedirect()
        redirect.uri = "/new"
        $0.spec.http?[0].route = nil
        $0.spec.http?[0].redirect = redirect
        $0.spec.http?[0].rewrite = .init()
    },
    VSCase("rewrite uri", "spec.http[0].rewrite.uri", "must start with \"/\", got \"v2\"") {
        var rewrite = weft.v1alpha1.HTTPRewrite()
        rewrite.uri = "v2"
        $0.spec.http?[0].rewrite = rewrite
    },
    // Header operations.
    VSCase(
        "header operations",
        [
            FieldError("spec.http[0].headers.request.set.X-Canary", "header name must be lowercase, got \"X-Canary\""),
            FieldError("spec.http[0].headers.request.remove[0]", "cannot remove and set the same header \"x-a\""),
            FieldError(
                "spec.http[0].headers.response.add.x_b:",
                "header name may contain only a-z, 0-9 and "
                    + "!#$%&'*+-.^_`|~, got \"x_b:\""),
        ]
    ) {
        $0.spec.http?[0].headers = .init(
            request: .init(set: ["X-Canary": "1", "x-a": "1"], remove: ["x-a"]),
            response: .init(add: ["x_b:": "1"]))
    },
    VSCase(
        "destination header operations", "spec.http[1].route[0].headers.response.remove[0]",
        "cannot remove and add the same header \"x-internal\""
    ) {
        $0.spec.http?[1].route?[0].headers = .init(response: .init(add: ["x-internal": "1"], remove: ["x-internal"]))
    },
    // TCP routes.
    VSCase("empty tcp route", "spec.tcp[0].route", "must not be empty") { $0.spec.tcp?[0].route = [] },
    VSCase(
        "tcp weights",
        [
            FieldError("spec.tcp[0].route[1].destination.port.number", between(1, 65535, got: "65536")),
            FieldError("spec.tcp[0].route", "weights must sum to 100, got 80"),
        ]
    ) {
        $0.spec.tcp?[0].route = [
            .init(destination: .init(host: "catalog", port: .init(number: 9000)), weight: 80),
            .init(destination: .init(host: "catalog", port: .init(number: 65536))),
        ]
    },
    VSCase("tcp match port", "spec.tcp[0].match[0].port", between(1, 65535, got: "0")) {
        $0.spec.tcp?[0].match = [.init(port: 0)]
    },
]

@Suite("VirtualService validation")
struct VirtualServiceValidationTests {
    @Test(arguments: virtualServiceCases)
    func reportsExactErrors(_ testCase: VSCase) {
        let resource = testCase.apply(to: Shop.catalogVirtualService())
        #expect(resource.validate() == testCase.expected)
    }

    @Test(arguments: ["catalog", "catalog.shop", "catalog.shop.svc", "catalog.shop.svc.cluster.local", "a-1.b2"])
    func acceptsServiceHosts(_ host: String) {
        var resource = Shop.catalogVirtualService()
        resource.spec.hosts = [host]
        resource.spec.http?[0].route?[0].destination.host = host
        #expect(resource.validate() == [])
    }

    @Test(arguments: ["(", "a{2,1}", "[z-a]"])
    func reportsRegexThatDoesNotCompile(_ regex: String) throws {
        var resource = Shop.catalogVirtualService()
        resource.spec.http?[0].match?[0].uri = .init(regex: regex)
        let errors = resource.validate()
        try #require(errors.count == 1)
        #expect(errors[0].path == "spec.http[0].match[0].uri.regex")
        #expect(errors[0].message.hasPrefix("invalid regex \"\(regex)\": "))
    }

    @Test func acceptsEveryOptionalFeatureWhenValid() {
        var resource = Shop.catalogVirtualService()
        var match = weft.v1alpha1.HTTPMatchRequest()
        match.uri = .init(regex: "/api/v[0-9]+/.*")
        match.method = .init(exact: "GET")
        match.authority = .init(prefix: "catalog")
        match.queryParams = ["debug": .init(exact: "true")]
        match.port = 80
        resource.spec.http?[1].match = [match]
        resource.spec.http?[1].retries?.retryOn = "5xx, 503,retriable-4xx,cancelled,internal"
        resource.spec.http?[1].retries?.backoff = .init(baseInterval: "25ms", maxInterval: "250ms")
        resource.spec.http?[1].fault = .init(
            delay: .init(percentage: 1, fixedDelay: "100ms"),
            abort: .init(percentage: 0.5, httpStatus: 503))
        resource.spec.http?[1].mirror = .init(host: "catalog", subset: "shadow")
        resource.spec.http?[1].mirrorPercentage = 5
        var rewrite = weft.v1alpha1.HTTPRewrite()
        rewrite.uri = "/"
        resource.spec.http?[1].rewrite = rewrite
        resource.spec.http?[1].headers = .init(
            request: .init(set: ["x-canary": "1"]),
            response: .init(remove: ["x-internal"]))
        var redirect = weft.v1alpha1.HTTPRedirect()
        redirect.uri = "/new"
        redirect.authority = "other"
        redirect.scheme = "https"
        redirect.port = 443
        redirect.redirectCode = 308
        var moved = weft.v1alpha1.HTTPRoute()
        moved.redirect = redirect
        resource.spec.http?.append(moved)
        #expect(resource.validate() == [])
    }

    @Test func reportsEveryErrorInFieldOrder() {
        var resource = Shop.catalogVirtualService()
        resource.metadata.namespace = nil
        resource.spec.hosts = ["catalog", "Catalog"]
        resource.spec.http?[0].match?[0].headers = ["X-Beta": .init(exact: "1")]
        resource.spec.http?[1].route?[1].weight = 0
        resource.spec.http?[1].timeout = "2x"
        resource.spec.tcp?[0].route = []
        #expect(
            resource.validate() == [
                FieldError("metadata.namespace", "must be set"),
                FieldError("spec.hosts[1]", "must be lowercase, got \"Catalog\""),
                FieldError("spec.http[0].match[0].headers.X-Beta", "header name must be lowercase, got \"X-Beta\""),
                FieldError("spec.http[1].route", "weights must sum to 100, got 90"),
                FieldError("spec.http[1].timeout", invalidDuration("2x")),
                FieldError("spec.tcp[0].route", "must not be empty"),
            ])
        #expect(resource.validate().map(\.description).contains("spec.http[1].route: weights must sum to 100, got 90"))
    }
}

@Suite("Shop examples")
struct ShopExampleValidationTests {
    @Test func routingExamplesAreValid() {
        #expect(Shop.catalogVirtualService().validate() == [])
        #expect(Shop.paymentsVirtualService().validate() == [])
        #expect(Shop.catalogDestinationPolicy().validate() == [])
        #expect(Shop.paymentsDestinationPolicy().validate() == [])
    }

    @Test func securityExamplesAreValid() {
        #expect(Shop.meshDefaultTLS().validate() == [])
        #expect(Shop.shopTLS().validate() == [])
        #expect(Shop.paymentsAllowFrontend().validate() == [])
        #expect(Shop.denyDebug().validate() == [])
    }

    @Test func swiftExamplesMatchTheManifests() throws {
        let routing = try ExampleFiles.documents("40-routing.yaml")
        try #require(routing.count == 4)
        #expect(try ExampleFiles.decode(VirtualService.self, routing[0]) == Shop.catalogVirtualService())
        #expect(try ExampleFiles.decode(DestinationPolicy.self, routing[1]) == Shop.catalogDestinationPolicy())
        #expect(try ExampleFiles.decode(VirtualService.self, routing[2]) == Shop.paymentsVirtualService())
        #expect(try ExampleFiles.decode(DestinationPolicy.self, routing[3]) == Shop.paymentsDestinationPolicy())
        let security = try ExampleFiles.documents("50-security.yaml")
        try #require(security.count == 4)
        #expect(try ExampleFiles.decode(MeshTLSPolicy.self, security[0]) == Shop.meshDefaultTLS())
        #expect(try ExampleFiles.decode(MeshTLSPolicy.self, security[1]) == Shop.shopTLS())
        #expect(try ExampleFiles.decode(AuthorizationPolicy.self, security[2]) == Shop.paymentsAllowFrontend())
        #expect(try ExampleFiles.decode(AuthorizationPolicy.self, security[3]) == Shop.denyDebug())
    }

    @Test func defaultedExamplesStayValid() {
        #expect(Shop.catalogVirtualService().defaulted().validate() == [])
        #expect(Shop.paymentsVirtualService().defaulted().validate() == [])
        #expect(Shop.catalogDestinationPolicy().defaulted().validate() == [])
        #expect(Shop.shopTLS().defaulted().validate() == [])
        #expect(Shop.denyDebug().defaulted().validate() == [])
    }
}
