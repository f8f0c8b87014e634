// The outbound HTTP router: a `ProxyConfig`'s services and routes compiled once per config, then matched on
// every request. Swift stdlib only; nothing on the match path allocates except lowercasing a mixed-case host.

// MARK: - Errors

/// Why a proxy rejects (NACKs) a config it was sent.
public struct ProxyConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable, machine-readable code, e.g. `invalid_regex`.
    public var code: String
    /// What is wrong and where, e.g. `route shop/catalog/beta: invalid regex "([": ...`.
    public var message: String

    /// Creates an error with a code and a human-readable message.
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    /// The code of an error raised for a regular expression that does not compile.
    public static let invalidRegex = "invalid_regex"

    public var description: String { "\(self.code): \(self.message)" }
}

// MARK: - Request

/// The parts of an HTTP request the router looks at.
public struct RequestInfo: Sendable {
    /// The `Host` header or HTTP/2 `:authority`; may carry a `:port` suffix and may be a bracketed IPv6 address.
    public var authority: String
    /// The listener (original destination) port, when known. Used when the authority has no port.
    public var port: Int?
    /// The method, e.g. `GET`.
    public var method: String
    /// The request target; may include `?query`.
    public var path: String
    /// Header fields in order; names are compared case-insensitively. Same shape as iterating NIO's `HTTPHeaders`.
    public var headers: [(name: String, value: String)]

    /// Creates a request description.
    public init(
        authority: String, port: Int? = nil, method: String = "GET", path: String = "/",
        headers: [(name: String, value: String)] = []
    ) {
        self.authority = authority
        self.port = port
        self.method = method
        self.path = path
        self.headers = headers
    }
}

/// The outcome of routing a request: the service it addressed and the route that takes it.
public struct RouteMatch: Hashable, Sendable {
    /// The service the authority (and port) resolved to.
    public var service: OutboundService
    /// The first route of `service` that matched.
    public var route: Route
    /// The index of `route` in `service.routes`.
    public var routeIndex: Int
    /// The entry of `route.matches` that matched; `nil` when the route has no matches (matches everything).
    /// Pass it to `rewrittenPath(_:matched:rewrite:)`.
    public var requestMatch: RequestMatch?
    /// The index of `requestMatch` in `route.matches`.
    public var matchIndex: Int?

    /// Creates a match result.
    public init(
        service: OutboundService, route: Route, routeIndex: Int, requestMatch: RequestMatch? = nil,
        matchIndex: Int? = nil
    ) {
        self.service = service
        self.route = route
        self.routeIndex = routeIndex
        self.requestMatch = requestMatch
        self.matchIndex = matchIndex
    }
}

// MARK: - Route table

/// Every outbound service and route of a config with its matchers compiled, ready to route requests.
///
/// Build one per config (`init` throws on a matcher that does not compile, which is how the proxy rejects a
/// config), then share it between event loops: it is immutable and `match` neither locks nor compiles.
public struct RouteTable: Sendable {
    /// The services in config order, each with its compiled routes.
    private let services: [CompiledService]
    /// Every host and alias (lowercase) to the indexes of the services it names, in config order.
    private let servicesByName: [Substring: [Int]]
    /// The proxy's namespace (short names depend on it).
    private let namespace: String
    /// Whether any route matches on a header: when none does, a request's `RequestInfo.headers` may stay empty
    /// (the proxy then does not copy its header list for every request).
    public let matchesHeaders: Bool

    /// Compiles every route matcher of `config.outbound`. With `previous` (the table of the config this one
    /// replaces, which a delta from the controller changed in a few entries), a service equal to the one with the
    /// same host and port there keeps its compiled matchers, and the name index is kept when every service keeps
    /// its names and place.
    ///
    /// - Throws: `ProxyConfigError` with code `invalid_regex` when a regex does not compile.
    public init(_ config: ProxyConfig, reusing previous: RouteTable? = nil) throws(ProxyConfigError) {
        var services: [CompiledService] = []
        services.reserveCapacity(config.outbound.count)
        let old = previous?.services ?? []
        var oldByKey: [ServiceKey: Int]?
        var samePlaces =
            previous != nil && old.count == config.outbound.count
            && previous?.namespace == config.proxy.namespace
        for (index, service) in config.outbound.enumerated() {
            var reused: CompiledService?
            if index < old.count, old[index].service.port == service.port, old[index].service.host == service.host {
                if old[index].service.aliases != service.aliases { samePlaces = false }
                if old[index].service == service { reused = old[index] }
            } else {
                samePlaces = false
                if !old.isEmpty {
                    let table = oldByKey ?? Self.positions(of: old)
                    oldByKey = table
                    if let position = table[ServiceKey(host: service.host, port: service.port)],
                        old[position].service == service
                    {
                        reused = old[position]
                    }
                }
            }
            if let reused {
                services.append(reused)
            } else {
                services.append(try CompiledService(service))
            }
        }
        self.services = services
        self.namespace = config.proxy.namespace
        self.matchesHeaders = config.outbound.contains { service in
            service.routes.contains { route in route.matches.contains { !$0.headers.isEmpty } }
        }
        if samePlaces, let previous {
            self.servicesByName = previous.servicesByName
            return
        }
        var byName: [Substring: [Int]] = [:]
        for (index, service) in config.outbound.enumerated() {
            for name in [service.host] + service.aliases + shortName(of: service.host, in: config.proxy.namespace) {
                let key = Substring(normalizedHostName(name[...]))
                var indexes = byName[key, default: []]
                if indexes.last != index {
                    indexes.append(index)
                }
                byName[key] = indexes
            }
        }
        self.servicesByName = byName
    }

    private static func positions(of services: [CompiledService]) -> [ServiceKey: Int] {
        var table: [ServiceKey: Int] = [:]
        table.reserveCapacity(services.count)
        for (position, compiled) in services.enumerated() {
            table[ServiceKey(host: compiled.service.host, port: compiled.service.port)] = position
        }
        return table
    }

    /// The service a request addresses, whatever its path: the one whose host or an alias equals the authority's
    /// host and whose port equals the authority port (else `request.port`, else 80); failing that, the only
    /// service with that name. `nil` when no service, or several on other ports, have that name.
    ///
    /// Useful for services without HTTP routes (`OutboundService.tcp`).
    public func service(for request: RequestInfo) -> OutboundService? {
        let authority = ParsedAuthority(request.authority)
        let port = authority.port ?? request.port ?? 80
        guard let index = self.serviceIndex(host: authority.host, port: port) else {
            return nil
        }
        return self.services[index].service
    }

    /// Routes a request: resolves its service (see `service(for:)`), then returns the first route, in order,
    /// that has no matches or has a `RequestMatch` whose every condition holds. `nil` means route_not_found.
    ///
    /// Paths are matched without the query string; the authority matcher sees the lowercase host without port;
    /// a header or query parameter condition holds when any field of that name matches (a missing one fails);
    /// query parameters are compared raw (not percent-decoded); `port` is compared to the resolved port.
    public func match(_ request: RequestInfo) -> RouteMatch? {
        let authority = ParsedAuthority(request.authority)
        let port = authority.port ?? request.port ?? 80
        guard let serviceIndex = self.serviceIndex(host: authority.host, port: port) else {
            return nil
        }
        let compiled = self.services[serviceIndex]
        let target = request.path[...]
        let queryStart = target.utf8.firstIndex(of: UInt8(ascii: "?"))
        let view = RequestView(
            host: authority.host,
            port: port,
            method: request.method[...],
            path: queryStart.map { target[..<$0] } ?? target,
            query: queryStart.map { target[target.index(after: $0)...] },
            headers: request.headers
        )
        for (routeIndex, route) in compiled.routes.enumerated() {
            if route.matches.isEmpty {
                return RouteMatch(
                    service: compiled.service, route: compiled.service.routes[routeIndex],
                    routeIndex: routeIndex)
            }
            for (matchIndex, requestMatch) in route.matches.enumerated() where requestMatch.matches(view) {
                let original = compiled.service.routes[routeIndex]
                return RouteMatch(
                    service: compiled.service, route: original, routeIndex: routeIndex,
                    requestMatch: original.matches[matchIndex], matchIndex: matchIndex)
            }
        }
        return nil
    }

    private func serviceIndex(host: Substring, port: Int) -> Int? {
        guard let candidates = self.servicesByName[host] else {
            return nil
        }
        for index in candidates where self.services[index].service.port == port {
            return index
        }
        return candidates.count == 1 ? candidates.first : nil
    }
}

// MARK: - Weighted choice

extension ForwardAction {
    /// The sum of the backends' weights (negative weights count as 0).
    public var totalWeight: Int { weightSum(self.backends) }

    /// The backend for a roll in `0..<totalWeight`: backends own consecutive ranges of rolls as wide as their
    /// weights, in order, so a uniform roll picks each in proportion to its weight and a 0-weight backend never.
    /// Deterministic; the caller supplies the randomness. `nil` when the roll is out of range (or no weight).
    public func pickBackend(roll: Int) -> WeightedCluster? {
        pickWeighted(self.backends, roll: roll)
    }
}

extension TCPRoute {
    /// The sum of the backends' weights (negative weights count as 0).
    public var totalWeight: Int { weightSum(self.backends) }

    /// The backend for a roll in `0..<totalWeight`; see `ForwardAction.pickBackend(roll:)`.
    public func pickBackend(roll: Int) -> WeightedCluster? {
        pickWeighted(self.backends, roll: roll)
    }
}

private func weightSum(_ backends: [WeightedCluster]) -> Int {
    var total = 0
    for backend in backends where backend.weight > 0 {
        total += backend.weight
    }
    return total
}

private func pickWeighted(_ backends: [WeightedCluster], roll: Int) -> WeightedCluster? {
    guard roll >= 0 else {
        return nil
    }
    var remaining = roll
    for backend in backends where backend.weight > 0 {
        if remaining < backend.weight {
            return backend
        }
        remaining -= backend.weight
    }
    return nil
}

// MARK: - Rewrite

/// The path to send upstream after a route's `rewrite`.
///
/// When the request matched on a path prefix (and `path` starts with it), the prefix is replaced by
/// `rewrite.path`; otherwise (exact, regex or no path match) the whole path is. The query string is kept.
/// Without `rewrite.path` the path is returned unchanged.
public func rewrittenPath(_ path: String, matched: RequestMatch?, rewrite: Rewrite) -> String {
    guard let replacement = rewrite.path else {
        return path
    }
    let queryStart = path.utf8.firstIndex(of: UInt8(ascii: "?")) ?? path.endIndex
    let pathOnly = path[..<queryStart]
    let query = path[queryStart...]
    if let matcher = matched?.path, matcher.kind == .prefix, pathOnly.utf8.starts(with: matcher.value.utf8) {
        let rest = pathOnly.utf8.dropFirst(matcher.value.utf8.count)
        return replacement + String(Substring(rest)) + query
    }
    return replacement + query
}

// MARK: - Compiled form

/// A compiled regular expression shared by every event loop.
///
/// `@unchecked Sendable` because `Regex<AnyRegexOutput>` is not declared `Sendable`. It is safe: the box is
/// immutable after init (`let` only), `Regex` is a value type whose matching never mutates it, and init runs one
/// match so that the regex's lazily lowered program is built before the box is shared; afterwards concurrent
/// `wholeMatch` calls only read it.
final class CompiledRegex: @unchecked Sendable {
    let pattern: String
    private let regex: Regex<AnyRegexOutput>

    init(_ pattern: String, context: String) throws(ProxyConfigError) {
        do {
            self.regex = try Regex(pattern)
        } catch {
            throw ProxyConfigError(
                code: ProxyConfigError.invalidRegex,
                message: "\(context): invalid regex \"\(pattern)\": \(error)"
            )
        }
        self.pattern = pattern
        _ = self.wholeMatches("")
    }

    /// Whether the whole of `value` matches.
    func wholeMatches(_ value: Substring) -> Bool {
        (try? self.regex.wholeMatch(in: value)) != nil
    }
}

struct CompiledStringMatcher: Sendable {
    enum Test: Sendable {
        case exact(String)
        case prefix(String)
        case regex(CompiledRegex)
    }

    let test: Test

    /// - Parameter lowercased: compare exact and prefix values in lowercase (for matching lowercase hosts).
    init(_ matcher: StringMatcher, context: String, lowercased: Bool = false) throws(ProxyConfigError) {
        switch matcher.kind {
        case .exact:
            self.test = .exact(lowercased ? matcher.value.lowercased() : matcher.value)
        case .prefix:
            self.test = .prefix(lowercased ? matcher.value.lowercased() : matcher.value)
        case .regex:
            self.test = .regex(try CompiledRegex(matcher.value, context: context))
        }
    }

    /// Byte-wise for exact and prefix; a full match for regex.
    func matches(_ value: Substring) -> Bool {
        switch self.test {
        case .exact(let expected):
            return value.utf8.elementsEqual(expected.utf8)
        case .prefix(let prefix):
            return value.utf8.starts(with: prefix.utf8)
        case .regex(let regex):
            return regex.wholeMatches(value)
        }
    }
}

struct CompiledNamedMatcher: Sendable {
    /// Lowercase for headers; as configured for query parameters.
    let name: String
    let matcher: CompiledStringMatcher
}

/// The request as the matchers see it, split once per request.
struct RequestView {
    var host: Substring
    var port: Int
    var method: Substring
    /// Without the query string.
    var path: Substring
    /// After the `?`, when there is one.
    var query: Substring?
    var headers: [(name: String, value: String)]
}

struct CompiledRequestMatch: Sendable {
    let path: CompiledStringMatcher?
    let method: CompiledStringMatcher?
    let authority: CompiledStringMatcher?
    let headers: [CompiledNamedMatcher]
    let queryParams: [CompiledNamedMatcher]
    let port: Int?

    init(_ match: RequestMatch, context: String) throws(ProxyConfigError) {
        self.path = try match.path.map { (matcher) throws(ProxyConfigError) in
            try CompiledStringMatcher(matcher, context: context)
        }
        self.method = try match.method.map { (matcher) throws(ProxyConfigError) in
            try CompiledStringMatcher(matcher, context: context)
        }
        self.authority = try match.authority.map { (matcher) throws(ProxyConfigError) in
            try CompiledStringMatcher(matcher, context: context, lowercased: true)
        }
        var headers: [CompiledNamedMatcher] = []
        for header in match.headers {
            headers.append(
                CompiledNamedMatcher(
                    name: header.name.lowercased(),
                    matcher: try CompiledStringMatcher(header.match, context: context)
                ))
        }
        self.headers = headers
        var queryParams: [CompiledNamedMatcher] = []
        for param in match.queryParams {
            queryParams.append(
                CompiledNamedMatcher(
                    name: param.name,
                    matcher: try CompiledStringMatcher(param.match, context: context)
                ))
        }
        self.queryParams = queryParams
        self.port = match.port
    }

    func matches(_ request: RequestView) -> Bool {
        if let port = self.port, port != request.port {
            return false
        }
        if let method = self.method, !method.matches(request.method) {
            return false
        }
        if let path = self.path, !path.matches(request.path) {
            return false
        }
        if let authority = self.authority, !authority.matches(request.host) {
            return false
        }
        for header in self.headers where !Self.headerMatches(header, request.headers) {
            return false
        }
        if !self.queryParams.isEmpty {
            guard let query = request.query else {
                return false
            }
            for param in self.queryParams where !Self.queryParamMatches(param, query) {
                return false
            }
        }
        return true
    }

    private static func headerMatches(
        _ header: CompiledNamedMatcher,
        _ fields: [(name: String, value: String)]
    ) -> Bool {
        for field in fields where asciiCaseInsensitiveEquals(field.name, lowercase: header.name) {
            if header.matcher.matches(field.value[...]) {
                return true
            }
        }
        return false
    }

    /// Splits `query` on `&`, each pair on its first `=` (no `=`: empty value); names and values stay raw.
    private static func queryParamMatches(_ param: CompiledNamedMatcher, _ query: Substring) -> Bool {
        var rest = query
        while true {
            let end = rest.utf8.firstIndex(of: UInt8(ascii: "&")) ?? rest.endIndex
            let pair = rest[..<end]
            let equals = pair.utf8.firstIndex(of: UInt8(ascii: "=")) ?? pair.endIndex
            let name = pair[..<equals]
            if name.utf8.elementsEqual(param.name.utf8) {
                let value = equals == pair.endIndex ? pair[equals...] : pair[pair.index(after: equals)...]
                if param.matcher.matches(value) {
                    return true
                }
            }
            guard end != rest.endIndex else {
                return false
            }
            rest = rest[rest.index(after: end)...]
        }
    }
}

struct CompiledRoute: Sendable {
    let matches: [CompiledRequestMatch]

    init(_ route: Route) throws(ProxyConfigError) {
        var matches: [CompiledRequestMatch] = []
        for match in route.matches {
            matches.append(try CompiledRequestMatch(match, context: "route \(route.name)"))
        }
        self.matches = matches
    }
}

private struct ServiceKey: Hashable {
    var host: String
    var port: Int
}

struct CompiledService: Sendable {
    let service: OutboundService
    /// Parallel to `service.routes`.
    let routes: [CompiledRoute]

    init(_ service: OutboundService) throws(ProxyConfigError) {
        var routes: [CompiledRoute] = []
        for route in service.routes {
            routes.append(try CompiledRoute(route))
        }
        self.service = service
        self.routes = routes
    }
}

// MARK: - Authority parsing

/// The short name of a Service host (`catalog` for `catalog.shop.svc.cluster.local`) when the proxy runs in the
/// Service's namespace, as the cluster DNS search path resolves it there; otherwise nothing.
func shortName(of host: String, in namespace: String) -> [String] {
    let labels = host.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false)
    guard labels.count >= 3, labels[2] == "svc", labels[1] == namespace, !labels[0].isEmpty else { return [] }
    return [String(labels[0])]
}

/// `host[:port]`, `[v6]:port` or a bare IPv6 address, split without allocating (unless the host has uppercase).
struct ParsedAuthority {
    /// Lowercase, without brackets, port or one trailing dot.
    var host: Substring
    var port: Int?

    init(_ authority: String) {
        let utf8 = authority.utf8
        var host = authority[...]
        var port: Int?
        if utf8.first == UInt8(ascii: "[") {
            if let close = utf8.firstIndex(of: UInt8(ascii: "]")) {
                host = authority[authority.index(after: authority.startIndex)..<close]
                let afterClose = authority[authority.index(after: close)...]
                if afterClose.utf8.first == UInt8(ascii: ":") {
                    port = Int(afterClose.dropFirst())
                }
            }
        } else if let colons = colonsAndPort(utf8), colons.count == 1 {
            // Exactly one colon: host:port. Several: a bare IPv6 address, no port.
            let colon = utf8.index(utf8.startIndex, offsetBy: colons.last)
            host = authority[..<colon]
            port = colons.port ?? Int(authority[authority.index(after: colon)...])
        }
        self.host = normalizedHostName(host)
        self.port = port
    }
}

/// How many colons `authority` holds and the offset of the last, with the digits after it as a number when they are
/// 1 to 9 plain digits (nil otherwise: `Int`'s own parse decides then); nil without a colon. One pass over the bytes,
/// where indexing a `String` by `String.Index` costs a check per step.
private func colonsAndPort(_ authority: String.UTF8View) -> (count: Int, last: Int, port: Int?)? {
    let scanned = authority.withContiguousStorageIfAvailable { bytes -> (count: Int, last: Int, port: Int?)? in
        var count = 0
        var last = -1
        var port = 0
        var digits = 0
        var plain = true
        for (offset, byte) in bytes.enumerated() {
            if byte == UInt8(ascii: ":") {
                count += 1
                last = offset
                port = 0
                digits = 0
                plain = true
            } else if count > 0, plain {
                if byte &- UInt8(ascii: "0") < 10, digits < 9 {
                    port = port * 10 + Int(byte &- UInt8(ascii: "0"))
                    digits += 1
                } else {
                    plain = false
                }
            }
        }
        guard count > 0 else {
            return nil
        }
        return (count, last, plain && digits > 0 ? port : nil)
    }
    if let scanned {
        return scanned
    }
    // Not contiguous (a bridged string, never on Linux): counted by walking.
    guard let lastColon = authority.lastIndex(of: UInt8(ascii: ":")) else {
        return nil
    }
    return (
        authority.reduce(0) { $0 + ($1 == UInt8(ascii: ":") ? 1 : 0) },
        authority.distance(from: authority.startIndex, to: lastColon), nil
    )
}

/// `name` in lowercase without one trailing dot; allocates only when there is uppercase to fold.
private func normalizedHostName(_ name: Substring) -> Substring {
    var name = name
    if name.utf8.last == UInt8(ascii: "."), name.utf8.count > 1 {
        name = name.dropLast()
    }
    if name.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
        return Substring(name.lowercased())
    }
    return name
}

/// Whether `name` equals `lowercase` ignoring ASCII case; `lowercase` must already be lowercase.
func asciiCaseInsensitiveEquals(_ name: String, lowercase: String) -> Bool {
    guard name.utf8.count == lowercase.utf8.count else {
        return false
    }
    for (byte, expected) in zip(name.utf8, lowercase.utf8) {
        let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
        if folded != expected {
            return false
        }
    }
    return true
}
