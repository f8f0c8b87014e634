import KubeModel
import Testing
import WeftAPI

typealias DPCase = ValidationCase<DestinationPolicy>
typealias TLSCase = ValidationCase<MeshTLSPolicy>
typealias AuthzCase = ValidationCase<AuthorizationPolicy>

/// Edits of the valid catalog DestinationPolicy (LEAST_REQUEST, pool, outlier detection, subsets v1 and v2).
let destinationPolicyCases: [DPCase] = [
    DPCase("name missing", "metadata.name", "must be set") { $0.metadata.name = "" },
    DPCase("host missing", "spec.host", "must be set") { $0.spec.host = "" },
    DPCase("host invalid", "spec.host", "wildcards are not allowed, got \"*\"") { $0.spec.host = "*" },
    DPCase("subset name", "spec.subsets[0].name", dnsLabelMessage("v1.0")) { $0.spec.subsets?[0].name = "v1.0" },
    DPCase("duplicate subset", "spec.subsets[1].name", "duplicate subset name \"v1\"") {
        $0.spec.subsets?[1].name = "v1"
    },
    DPCase("subset without labels", "spec.subsets[1].labels", "must not be empty") { $0.spec.subsets?[1].labels = [:] },
    DPCase(
        "subset label value", "spec.subsets[0].labels.version",
        "label value must be at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or "
            + "digit, got \"v1!\""
    ) { $0.spec.subsets?[0].labels = ["version": "v1!"] },
    DPCase(
        "simple and consistentHash", "spec.trafficPolicy.loadBalancer",
        "set exactly one of simple or consistentHash"
    ) {
        var hash = weft.v1alpha1.ConsistentHash()
        hash.useSourceIp = true
        $0.spec.trafficPolicy?.loadBalancer?.consistentHash = hash
    },
    DPCase("empty loadBalancer", "spec.trafficPolicy.loadBalancer", "set exactly one of simple or consistentHash") {
        $0.spec.trafficPolicy?.loadBalancer = .init()
    },
    DPCase(
        "unknown simple", "spec.trafficPolicy.loadBalancer.simple",
        "must be one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, got \"FASTEST\""
    ) {
        $0.spec.trafficPolicy?.loadBalancer = .init(simple: "FASTEST")
    },
    DPCase(
        "subset traffic policy", "spec.subsets[1].trafficPolicy.loadBalancer.simple",
        "must be one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, got \"round_robin\""
    ) {
        var policy = weft.v1alpha1.TrafficPolicy()
        policy.loadBalancer = .init(simple: "round_robin")
        $0.spec.subsets?[1].trafficPolicy = policy
    },
    DPCase(
        "consistentHash without key", "spec.trafficPolicy.loadBalancer.consistentHash",
        "set exactly one of httpHeaderName, httpCookie or useSourceIp"
    ) {
        var hash = weft.v1alpha1.ConsistentHash()
        hash.useSourceIp = false
        $0.spec.trafficPolicy?.loadBalancer = .init(consistentHash: hash)
    },
    DPCase(
        "consistentHash with two keys", "spec.trafficPolicy.loadBalancer.consistentHash",
        "set exactly one of httpHeaderName, httpCookie or useSourceIp"
    ) {
        var hash = weft.v1alpha1.ConsistentHash()
        hash.httpHeaderName = "x-user"
        hash.httpCookie = .init(name: "session")
        $0.spec.trafficPolicy?.loadBalancer = .init(consistentHash: hash)
    },
    DPCase(
        "consistentHash fields",
        [
            FieldError("spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name", "must be set"),
            FieldError("spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl", invalidDuration("1d")),
            FieldError(
                "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
                between(1, 8_388_608, got: "0")),
        ]
    ) {
        var hash = weft.v1alpha1.ConsistentHash()
        var cookie = weft.v1alpha1.HTTPCookie(name: "")
        cookie.ttl = "1d"
        hash.httpCookie = cookie
        hash.minimumRingSize = 0
        $0.spec.trafficPolicy?.loadBalancer = .init(consistentHash: hash)
    },
    DPCase(
        "connection pool",
        [
            FieldError("spec.trafficPolicy.connectionPool.maxConnections", "must not be negative, got -1"),
            FieldError("spec.trafficPolicy.connectionPool.maxRequestsPerConnection", "must not be negative, got -5"),
            FieldError("spec.trafficPolicy.connectionPool.connectTimeout", "must be greater than 0, got \"0s\""),
            FieldError("spec.trafficPolicy.connectionPool.idleTimeout", invalidDuration("1 h")),
        ]
    ) {
        $0.spec.trafficPolicy?.connectionPool?.maxConnections = -1
        $0.spec.trafficPolicy?.connectionPool?.maxRequestsPerConnection = -5
        $0.spec.trafficPolicy?.connectionPool?.connectTimeout = "0s"
        $0.spec.trafficPolicy?.connectionPool?.idleTimeout = "1 h"
    },
    DPCase(
        "outlier detection",
        [
            FieldError("spec.trafficPolicy.outlierDetection.consecutive5xxErrors", "must not be negative, got -1"),
            FieldError("spec.trafficPolicy.outlierDetection.consecutiveGatewayErrors", "must not be negative, got -2"),
            FieldError("spec.trafficPolicy.outlierDetection.interval", "must be greater than 0, got \"0\""),
            FieldError("spec.trafficPolicy.outlierDetection.baseEjectionTime", invalidDuration("30")),
            FieldError("spec.trafficPolicy.outlierDetection.maxEjectionPercent", between(0, 100, got: "101")),
        ]
    ) {
        $0.spec.trafficPolicy?.outlierDetection?.consecutive5xxErrors = -1
        $0.spec.trafficPolicy?.outlierDetection?.consecutiveGatewayErrors = -2
        $0.spec.trafficPolicy?.outlierDetection?.interval = "0"
        $0.spec.trafficPolicy?.outlierDetection?.baseEjectionTime = "30"
        $0.spec.trafficPolicy?.outlierDetection?.maxEjectionPercent = 101
    },
    DPCase(
        "retry budget",
        [
            FieldError("spec.trafficPolicy.retryBudget.percent", between(0, 100, got: "120")),
            FieldError("spec.trafficPolicy.retryBudget.minRetriesPerSecond", "must not be negative, got -1"),
        ]
    ) { $0.spec.trafficPolicy?.retryBudget = .init(percent: 120, minRetriesPerSecond: -1) },
]

func portLevelKeyMessage(_ key: String) -> String {
    "must be a port number between 1 and 65535 (decimal, no leading zeros), got \"\(key)\""
}

/// Edits of the valid `shop` MeshTLSPolicy (STRICT, no selector).
let meshTLSPolicyCases: [TLSCase] = [
    TLSCase("namespace missing", "metadata.namespace", "must be set") { $0.metadata.namespace = nil },
    TLSCase("unknown mode", "spec.mode", "must be one of STRICT, PERMISSIVE, DISABLE, got \"STRICTER\"") {
        $0.spec.mode = "STRICTER"
    },
    TLSCase("port level mode", "spec.portLevel.9090", "must be one of STRICT, PERMISSIVE, DISABLE, got \"strict\"") {
        $0.spec.portLevel = ["9090": "strict"]
    },
    TLSCase(
        "port level keys",
        [
            FieldError("spec.portLevel.0", between(1, 65535, got: "0")),
            FieldError("spec.portLevel.http", portLevelKeyMessage("http")),
        ]
    ) { $0.spec.portLevel = ["http": "STRICT", "0": "DISABLE"] },
    // The compiler looks ports up as `String(port)`: only the canonical decimal form can ever apply.
    TLSCase("port level key with a leading zero", "spec.portLevel.080", portLevelKeyMessage("080")) {
        $0.spec.portLevel = ["080": "STRICT"]
    },
    TLSCase("port level key past Int32", "spec.portLevel.99999999999", portLevelKeyMessage("99999999999")) {
        $0.spec.portLevel = ["99999999999": "STRICT"]
    },
    TLSCase("port level key empty", "spec.portLevel.", portLevelKeyMessage("")) { $0.spec.portLevel = ["": "STRICT"] },
    TLSCase("port level key signed", "spec.portLevel.+80", portLevelKeyMessage("+80")) {
        $0.spec.portLevel = ["+80": "STRICT"]
    },
    TLSCase(
        "selector",
        [
            FieldError(
                "spec.selector.matchLabels.app",
                "label value must be at most 63 letters, digits, '-', '_' and "
                    + "'.', starting and ending with a letter or digit, got \"-payments\""),
            FieldError(
                "spec.selector.matchExpressions[0].operator",
                "must be one of In, NotIn, Exists, DoesNotExist, got \"Like\""),
            FieldError("spec.selector.matchExpressions[1].values", "must not be empty for operator In"),
            FieldError("spec.selector.matchExpressions[2].values", "must not be empty for operator NotIn"),
            FieldError("spec.selector.matchExpressions[3].values", "must not be set for operator Exists"),
            FieldError(
                "spec.selector.matchExpressions[4].key",
                "label key must be a name of letters, digits, '-', '_' "
                    + "and '.' (at most 63 characters), optionally prefixed by a DNS subdomain and '/', got \"a/b/c\""),
            FieldError("spec.selector.matchExpressions[4].values", "must not be set for operator DoesNotExist"),
        ]
    ) {
        $0.spec.selector = .init(
            matchLabels: ["app": "-payments"],
            matchExpressions: [
                .init(key: "app", operator: "Like", values: ["payments"]),
                .init(key: "app", operator: "In"),
                .init(key: "app", operator: "NotIn", values: []),
                .init(key: "app", operator: "Exists", values: ["payments"]),
                .init(key: "a/b/c", operator: "DoesNotExist", values: []),
            ])
    },
]

/// Edits of the valid payments-allow-frontend AuthorizationPolicy.
let authorizationPolicyCases: [AuthzCase] = [
    AuthzCase("unknown action", "spec.action", "must be one of ALLOW, DENY, got \"AUDIT\"") {
        $0.spec.action = "AUDIT"
    },
    AuthzCase(
        "selector operator", "spec.selector.matchExpressions[0].operator",
        "must be one of In, NotIn, Exists, DoesNotExist, got \"in\""
    ) {
        $0.spec.selector = .init(matchExpressions: [.init(key: "app", operator: "in", values: ["payments"])])
    },
    AuthzCase("empty from", "spec.rules[0].from", "must not be empty; omit the field to match everything") {
        $0.spec.rules?[0].from = []
    },
    AuthzCase("empty to", "spec.rules[0].to", "must not be empty; omit the field to match everything") {
        $0.spec.rules?[0].to = []
    },
    AuthzCase(
        "principals",
        [
            FieldError("spec.rules[0].from[0].principals[0]", principalMessage("frontend")),
            FieldError("spec.rules[0].from[0].principals[1]", principalMessage("spiffe://cluster.local/*/sa/*")),
            FieldError("spec.rules[0].from[0].notPrincipals[0]", principalMessage("*frontend*")),
        ]
    ) {
        $0.spec.rules?[0].from?[0].principals = ["frontend", "spiffe://cluster.local/*/sa/*"]
        $0.spec.rules?[0].from?[0].notPrincipals = ["*frontend*"]
    },
    AuthzCase(
        "namespaces",
        [
            FieldError("spec.rules[0].from[0].namespaces[0]", dnsLabelMessage("Ops")),
            FieldError("spec.rules[0].from[0].notNamespaces[1]", dnsLabelMessage("shop.prod")),
        ]
    ) {
        $0.spec.rules?[0].from?[0].namespaces = ["Ops", "*"]
        $0.spec.rules?[0].from?[0].notNamespaces = ["ops", "shop.prod"]
    },
    AuthzCase(
        "methods",
        [
            FieldError("spec.rules[0].to[0].methods[1]", methodMessage("post")),
            FieldError("spec.rules[0].to[0].notMethods[0]", methodMessage("")),
        ]
    ) {
        $0.spec.rules?[0].to?[0].methods = ["GET", "post"]
        $0.spec.rules?[0].to?[0].notMethods = [""]
    },
    AuthzCase(
        "paths",
        [
            FieldError("spec.rules[0].to[0].paths[0]", pathMessage("pay/*")),
            FieldError("spec.rules[0].to[0].paths[1]", pathMessage("/a/*/b")),
            FieldError("spec.rules[0].to[0].notPaths[0]", pathMessage("*/debug/*")),
        ]
    ) {
        $0.spec.rules?[0].to?[0].paths = ["pay/*", "/a/*/b", "*.json", "*", "/exact"]
        $0.spec.rules?[0].to?[0].notPaths = ["*/debug/*"]
    },
    AuthzCase(
        "ports",
        [
            FieldError("spec.rules[0].to[0].ports[1]", between(1, 65535, got: "0")),
            FieldError("spec.rules[0].to[0].notPorts[0]", between(1, 65535, got: "65536")),
        ]
    ) {
        $0.spec.rules?[0].to?[0].ports = [8080, 0]
        $0.spec.rules?[0].to?[0].notPorts = [65536]
    },
]

func principalMessage(_ value: String) -> String {
    "must be \"*\" or a SPIFFE ID such as spiffe://cluster.local/ns/shop/sa/frontend, with at most one \"*\" at the "
        + "start or end, got \"\(value)\""
}

func methodMessage(_ value: String) -> String {
    "must be an uppercase HTTP method such as GET or POST, got \"\(value)\""
}

func pathMessage(_ value: String) -> String {
    "must start with \"/\" or \"*\" and contain at most one \"*\", at the start or end, got \"\(value)\""
}

@Suite("Policy validation")
struct PolicyValidationTests {
    @Test(arguments: destinationPolicyCases)
    func destinationPolicy(_ testCase: DPCase) {
        #expect(testCase.apply(to: Shop.catalogDestinationPolicy()).validate() == testCase.expected)
    }

    @Test(arguments: meshTLSPolicyCases)
    func meshTLSPolicy(_ testCase: TLSCase) {
        #expect(testCase.apply(to: Shop.shopTLS()).validate() == testCase.expected)
    }

    @Test(arguments: authorizationPolicyCases)
    func authorizationPolicy(_ testCase: AuthzCase) {
        #expect(testCase.apply(to: Shop.paymentsAllowFrontend()).validate() == testCase.expected)
    }

    @Test func acceptsValidHashCookieAndSubsetOverrides() {
        var resource = Shop.catalogDestinationPolicy()
        var hash = weft.v1alpha1.ConsistentHash()
        var cookie = weft.v1alpha1.HTTPCookie(name: "session")
        cookie.path = "/"
        cookie.ttl = "0s"
        hash.httpCookie = cookie
        hash.minimumRingSize = 8_388_608
        var policy = weft.v1alpha1.TrafficPolicy()
        policy.loadBalancer = .init(consistentHash: hash)
        policy.connectionPool = weft.v1alpha1.ConnectionPoolSettings()
        policy.connectionPool?.idleTimeout = "0s"
        resource.spec.subsets?[1].trafficPolicy = policy
        resource.spec.subsets?[0].labels = ["app.kubernetes.io/version": "v1", "track": ""]
        #expect(resource.validate() == [])
    }

    @Test func allowsPortLevelWithoutSelectorAndSelectorInRootNamespace() {
        var namespaceWide = Shop.shopTLS()
        namespaceWide.spec.portLevel = ["9090": "PERMISSIVE", "15021": "DISABLE"]
        #expect(namespaceWide.validate() == [])

        var meshWide = Shop.meshDefaultTLS()
        meshWide.spec.selector = .init(
            matchLabels: ["app": "payments"],
            matchExpressions: [
                .init(key: "version", operator: "In", values: ["v1", "v2"]),
                .init(key: "canary", operator: "DoesNotExist"),
            ])
        meshWide.spec.portLevel = ["9090": "STRICT"]
        meshWide.spec.mode = nil
        #expect(meshWide.validate() == [])
    }

    @Test(arguments: [
        "*", "spiffe://cluster.local/ns/shop/sa/frontend", "spiffe://cluster.local/ns/shop/*",
        "*/sa/frontend", "spiffe://*",
    ])
    func acceptsPrincipals(_ principal: String) {
        var resource = Shop.paymentsAllowFrontend()
        resource.spec.rules?[0].from?[0].principals = [principal]
        resource.spec.rules?[0].from?[0].namespaces = ["*", "ops"]
        #expect(resource.validate() == [])
    }

    @Test func reportsEveryErrorOfAPolicy() {
        var resource = Shop.denyDebug()
        resource.metadata.name = nil
        resource.spec.action = "deny"
        resource.spec.rules?.append(.init(from: [], to: []))
        #expect(
            resource.validate() == [
                FieldError("metadata.name", "must be set"),
                FieldError("spec.action", "must be one of ALLOW, DENY, got \"deny\""),
                FieldError("spec.rules[1].from", "must not be empty; omit the field to match everything"),
                FieldError("spec.rules[1].to", "must not be empty; omit the field to match everything"),
            ])
    }
}
