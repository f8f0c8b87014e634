// VirtualService validation.

/// Conditions `retryOn` accepts besides HTTP status codes.
let retryOnConditions = [
    "5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream",
    "cancelled", "deadline-exceeded", "unavailable", "resource-exhausted", "internal",
]

/// Redirect status codes.
let redirectCodes: [Int32] = [301, 302, 303, 307, 308]

extension FieldErrors {
    mutating func checkVirtualServiceSpec(_ spec: weft.v1alpha1.VirtualServiceSpec) {
        if spec.hosts.isEmpty {
            self.add("spec.hosts", "must list at least one host")
        }
        var seenHosts: Set<String> = []
        for (index, host) in spec.hosts.enumerated() {
            self.checkHost(host, at: "spec.hosts[\(index)]")
            if !seenHosts.insert(host).inserted {
                self.add("spec.hosts[\(index)]", "duplicate host \(quoted(host))")
            }
        }
        var seenRouteNames: Set<String> = []
        for (index, route) in (spec.http ?? []).enumerated() {
            let path = "spec.http[\(index)]"
            if let name = route.name, !seenRouteNames.insert(name).inserted {
                self.add("\(path).name", "duplicate route name \(quoted(name))")
            }
            self.checkHTTPRoute(route, at: path)
        }
        for (index, route) in (spec.tcp ?? []).enumerated() {
            let path = "spec.tcp[\(index)]"
            for (matchIndex, match) in (route.match ?? []).enumerated() {
                if let port = match.port {
                    self.checkPort(port, at: "\(path).match[\(matchIndex)].port")
                }
            }
            if route.route.isEmpty {
                self.add("\(path).route", "must not be empty")
            }
            for (destinationIndex, destination) in route.route.enumerated() {
                self.checkDestination(
                    destination.destination,
                    at: "\(path).route[\(destinationIndex)].destination")
            }
            self.checkWeights(route.route.map(\.weight), at: "\(path).route")
        }
    }

    // MARK: HTTP routes

    private mutating func checkHTTPRoute(_ route: weft.v1alpha1.HTTPRoute, at path: String) {
        for (index, match) in (route.match ?? []).enumerated() {
            self.checkMatch(match, at: "\(path).match[\(index)]")
        }
        switch (route.route, route.redirect) {
        case (.some, .some): self.add(path, "set either route or redirect, not both")
        case (.none, .none): self.add(path, "must set route or redirect")
        default: break
        }
        if let destinations = route.route {
            if destinations.isEmpty {
                self.add("\(path).route", "must not be empty")
            }
            for (index, destination) in destinations.enumerated() {
                self.checkDestination(destination.destination, at: "\(path).route[\(index)].destination")
                if let headers = destination.headers {
                    self.checkHeaders(headers, at: "\(path).route[\(index)].headers")
                }
            }
            self.checkWeights(destinations.map(\.weight), at: "\(path).route")
        }
        if let redirect = route.redirect {
            self.checkRedirect(redirect, at: "\(path).redirect")
        }
        if let rewrite = route.rewrite {
            if route.redirect != nil {
                self.add("\(path).rewrite", "cannot be used with redirect")
            }
            if let uri = rewrite.uri {
                self.checkStartsWithSlash(uri, at: "\(path).rewrite.uri")
                self.checkURIText(uri, at: "\(path).rewrite.uri")
            }
            if let authority = rewrite.authority {
                self.checkURIText(authority, at: "\(path).rewrite.authority")
            }
        }
        var timeout: Duration?
        if let text = route.timeout {
            timeout = self.checkDuration(text, positive: true, at: "\(path).timeout")
        }
        if let retries = route.retries {
            self.checkRetries(retries, timeout: timeout, timeoutText: route.timeout, at: "\(path).retries")
        }
        if let fault = route.fault {
            self.checkFault(fault, at: "\(path).fault")
        }
        if let mirror = route.mirror {
            self.checkDestination(mirror, at: "\(path).mirror")
        }
        if let percentage = route.mirrorPercentage {
            self.checkPercentage(percentage, at: "\(path).mirrorPercentage")
            if route.mirror == nil {
                self.add("\(path).mirrorPercentage", "may only be set together with mirror")
            }
        }
        if let headers = route.headers {
            self.checkHeaders(headers, at: "\(path).headers")
        }
    }

    private mutating func checkMatch(_ match: weft.v1alpha1.HTTPMatchRequest, at path: String) {
        if let uri = match.uri, self.checkStringMatch(uri, at: "\(path).uri") {
            if let exact = uri.exact {
                self.checkStartsWithSlash(exact, at: "\(path).uri.exact")
            }
            if let prefix = uri.prefix {
                self.checkStartsWithSlash(prefix, at: "\(path).uri.prefix")
            }
        }
        if let method = match.method, self.checkStringMatch(method, at: "\(path).method") {
            if let exact = method.exact {
                self.checkMethod(exact, at: "\(path).method.exact")
            }
            if let prefix = method.prefix {
                self.checkMethod(prefix, at: "\(path).method.prefix")
            }
        }
        if let authority = match.authority {
            self.checkStringMatch(authority, at: "\(path).authority")
        }
        let headers = match.headers ?? [:]
        for name in headers.keys.sorted() {
            self.checkHeaderName(name, at: "\(path).headers.\(name)")
            if let value = headers[name] {
                self.checkStringMatch(value, at: "\(path).headers.\(name)")
            }
        }
        let queryParams = match.queryParams ?? [:]
        for name in queryParams.keys.sorted() {
            if name.isEmpty {
                self.add("\(path).queryParams.", "query parameter name must not be empty")
            }
            if let value = queryParams[name] {
                self.checkStringMatch(value, at: "\(path).queryParams.\(name)")
            }
        }
        if let port = match.port {
            self.checkPort(port, at: "\(path).port")
        }
    }

    /// Exactly one of exact, prefix or regex, and a regex that compiles. Returns whether exactly one is set.
    @discardableResult
    private mutating func checkStringMatch(_ match: weft.v1alpha1.StringMatch, at path: String) -> Bool {
        let count = [match.exact != nil, match.prefix != nil, match.regex != nil].count(where: { $0 })
        if count != 1 {
            self.add(path, "set exactly one of exact, prefix or regex")
        }
        if let regex = match.regex {
            do {
                _ = try Regex(regex)
            } catch {
                self.add("\(path).regex", "invalid regex \(quoted(regex)): \(error)")
            }
        }
        return count == 1
    }

    // MARK: Destinations and weights

    private mutating func checkDestination(_ destination: weft.v1alpha1.Destination, at path: String) {
        self.checkHost(destination.host, at: "\(path).host")
        if let subset = destination.subset {
            self.checkDNSLabel(subset, at: "\(path).subset")
        }
        if let port = destination.port {
            self.checkPort(port.number, at: "\(path).port.number")
        }
    }

    /// Each weight 0-100; with several destinations, or any weight set, they sum to 100 (absent counts 0).
    private mutating func checkWeights(_ weights: [Int32?], at path: String) {
        for (index, weight) in weights.enumerated() {
            if let weight {
                self.checkRange(Int64(weight), 0, 100, at: "\(path)[\(index)].weight")
            }
        }
        guard weights.count > 1 || weights.contains(where: { $0 != nil }) else { return }
        let sum = weights.reduce(Int64(0)) { $0 + Int64($1 ?? 0) }
        if sum != 100 {
            self.add(path, "weights must sum to 100, got \(sum)")
        }
    }

    // MARK: Retries, fault, redirect, headers

    private mutating func checkRetries(
        _ retries: weft.v1alpha1.HTTPRetry, timeout: Duration?, timeoutText: String?,
        at path: String
    ) {
        self.checkRange(Int64(retries.attempts), 0, 100, at: "\(path).attempts")
        if let text = retries.perTryTimeout,
            let perTry = self.checkDuration(text, positive: true, at: "\(path).perTryTimeout"),
            let timeout, let timeoutText, perTry > timeout
        {
            self.add("\(path).perTryTimeout", "must not exceed timeout (\(timeoutText)), got \(text)")
        }
        if let retryOn = retries.retryOn {
            self.checkRetryOn(retryOn, at: "\(path).retryOn")
        }
        if let backoff = retries.backoff {
            var base: Duration?
            var upper: Duration?
            if let text = backoff.baseInterval {
                base = self.checkDuration(text, positive: true, at: "\(path).backoff.baseInterval")
            }
            if let text = backoff.maxInterval {
                upper = self.checkDuration(text, positive: true, at: "\(path).backoff.maxInterval")
            }
            if let base, let upper, base > upper, let baseText = backoff.baseInterval,
                let maxText = backoff.maxInterval
            {
                self.add("\(path).backoff.baseInterval", "must not exceed maxInterval (\(maxText)), got \(baseText)")
            }
        }
    }

    private mutating func checkRetryOn(_ retryOn: String, at path: String) {
        for token in retryOn.split(separator: ",", omittingEmptySubsequences: false) {
            let condition = String(token.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
            if retryOnConditions.contains(condition) { continue }
            if condition.utf8.count == 3, condition.allSatisfy(\.isASCII), let status = Int(condition),
                (100...599).contains(status)
            {
                continue
            }
            self.add(
                path,
                "unknown retry condition \(quoted(condition)): use "
                    + retryOnConditions.joined(separator: ", ") + " or an HTTP status code 100-599")
        }
    }

    private mutating func checkFault(_ fault: weft.v1alpha1.HTTPFaultInjection, at path: String) {
        if fault.delay == nil && fault.abort == nil {
            self.add(path, "must set delay or abort")
        }
        if let delay = fault.delay {
            if let percentage = delay.percentage {
                self.checkPercentage(percentage, at: "\(path).delay.percentage")
            }
            self.checkDuration(delay.fixedDelay, positive: false, at: "\(path).delay.fixedDelay")
        }
        if let abort = fault.abort {
            if let percentage = abort.percentage {
                self.checkPercentage(percentage, at: "\(path).abort.percentage")
            }
            self.checkRange(Int64(abort.httpStatus), 200, 599, at: "\(path).abort.httpStatus")
        }
    }

    private mutating func checkRedirect(_ redirect: weft.v1alpha1.HTTPRedirect, at path: String) {
        if let uri = redirect.uri {
            self.checkStartsWithSlash(uri, at: "\(path).uri")
            self.checkURIText(uri, at: "\(path).uri")
        }
        if let authority = redirect.authority {
            if authority.isEmpty {
                self.add("\(path).authority", "must not be empty; omit the field to keep the request's authority")
            }
            self.checkURIText(authority, at: "\(path).authority")
        }
        if let port = redirect.port {
            self.checkPort(port, at: "\(path).port")
        }
        if let scheme = redirect.scheme {
            self.checkOneOf(scheme, ["http", "https"], at: "\(path).scheme")
        }
        if let code = redirect.redirectCode, !redirectCodes.contains(code) {
            self.add("\(path).redirectCode", "must be one of 301, 302, 303, 307, 308, got \(code)")
        }
    }

    private mutating func checkHeaders(_ headers: weft.v1alpha1.Headers, at path: String) {
        if let request = headers.request {
            self.checkHeaderOperations(request, at: "\(path).request")
        }
        if let response = headers.response {
            self.checkHeaderOperations(response, at: "\(path).response")
        }
    }

    private mutating func checkHeaderOperations(_ operations: weft.v1alpha1.HeaderOperations, at path: String) {
        for (operation, headers) in [("set", operations.set ?? [:]), ("add", operations.add ?? [:])] {
            for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
                self.checkWritableHeaderName(name, at: "\(path).\(operation).\(name)")
                self.checkHeaderValue(value, at: "\(path).\(operation).\(name)")
            }
        }
        for (index, name) in (operations.remove ?? []).enumerated() {
            let itemPath = "\(path).remove[\(index)]"
            self.checkWritableHeaderName(name, at: itemPath)
            if operations.set?[name] != nil {
                self.add(itemPath, "cannot remove and set the same header \(quoted(name))")
            }
            if operations.add?[name] != nil {
                self.add(itemPath, "cannot remove and add the same header \(quoted(name))")
            }
        }
    }

    private mutating func checkStartsWithSlash(_ value: String, at path: String) {
        if !value.hasPrefix("/") {
            self.add(path, "must start with \"/\", got \(quoted(value))")
        }
    }
}
