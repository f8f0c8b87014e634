import KubeModel

/// An error answer of `FakeAPIServer`, worded as the real API server words it, sent as a `meta.v1.Status`.
struct FakeAPIError: Error, Sendable, Hashable {
    var code: Int
    var reason: String?
    var message: String
    var details: JSONObject?
    /// The Status's ListMeta: an expired continue token carries a fresh one here.
    var metadata: JSONObject = [:]

    /// `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",...}`.
    var status: JSONValue {
        var status: JSONObject = [
            "kind": "Status", "apiVersion": "v1", "metadata": .object(self.metadata), "status": "Failure",
            "message": .string(self.message), "code": .int(Int64(self.code)),
        ]
        if let reason = self.reason { status["reason"] = .string(reason) }
        if let details = self.details { status["details"] = .object(details) }
        return .object(status)
    }

    /// The reason the API server gives a code when nothing more specific applies.
    static func reason(forCode code: Int) -> String? {
        switch code {
        case 400: "BadRequest"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "NotFound"
        case 405: "MethodNotAllowed"
        case 406: "NotAcceptable"
        case 409: "Conflict"
        case 410: "Expired"
        case 413: "RequestEntityTooLarge"
        case 415: "UnsupportedMediaType"
        case 422: "Invalid"
        case 429: "TooManyRequests"
        case 500: "InternalError"
        case 503: "ServiceUnavailable"
        case 504: "Timeout"
        default: nil
        }
    }

    private static func details(_ resource: FakeAPIResource, name: String) -> JSONObject {
        var details: JSONObject = ["name": .string(name), "kind": .string(resource.plural)]
        if !resource.group.isEmpty { details["group"] = .string(resource.group) }
        return details
    }

    // MARK: - The errors the server answers

    /// What `failNext` injects.
    static func injected(code: Int) -> FakeAPIError {
        FakeAPIError(
            code: code, reason: self.reason(forCode: code), message: "injected failure (FakeAPIServer.failNext)")
    }

    static let pathNotFound = FakeAPIError(
        code: 404, reason: "NotFound", message: "the server could not find the requested resource", details: [:])

    static let methodNotAllowed = FakeAPIError(
        code: 405, reason: "MethodNotAllowed",
        message: "the server does not allow this method on the requested resource",
        details: [:])

    static func notFound(_ resource: FakeAPIResource, name: String) -> FakeAPIError {
        FakeAPIError(
            code: 404, reason: "NotFound", message: "\(resource.qualifiedResource) \"\(name)\" not found",
            details: self.details(resource, name: name))
    }

    static func alreadyExists(_ resource: FakeAPIResource, name: String) -> FakeAPIError {
        FakeAPIError(
            code: 409, reason: "AlreadyExists", message: "\(resource.qualifiedResource) \"\(name)\" already exists",
            details: self.details(resource, name: name))
    }

    static func conflict(_ resource: FakeAPIResource, name: String) -> FakeAPIError {
        FakeAPIError(
            code: 409, reason: "Conflict",
            message: "Operation cannot be fulfilled on \(resource.qualifiedResource) \"\(name)\": the object has been "
                + "modified; please apply your changes to the latest version and try again",
            details: self.details(resource, name: name))
    }

    /// A failed delete precondition (`DeleteOptions.preconditions`).
    static func preconditionFailed(
        _ resource: FakeAPIResource, name: String, field: String, wanted: String,
        actual: String
    ) -> FakeAPIError {
        FakeAPIError(
            code: 409, reason: "Conflict",
            message: "Operation cannot be fulfilled on \(resource.qualifiedResource) \"\(name)\": Precondition "
                + "failed: \(field): \(wanted), \(field) in object meta: \(actual)",
            details: self.details(resource, name: name))
    }

    static func badRequest(_ message: String) -> FakeAPIError {
        FakeAPIError(code: 400, reason: "BadRequest", message: message)
    }

    /// 422 with one cause, as field validation answers: `Pod "x" is invalid: metadata.name: Required value: ...`.
    static func invalid(
        kind: String, group: String, name: String, field: String, causeReason: String, causeMessage: String
    ) -> FakeAPIError {
        var details: JSONObject = [
            "name": .string(name), "kind": .string(kind),
            "causes": [
                .object([
                    "reason": .string(causeReason), "message": .string(causeMessage), "field": .string(field),
                ])
            ],
        ]
        if !group.isEmpty { details["group"] = .string(group) }
        let qualifiedKind = group.isEmpty ? kind : "\(kind).\(group)"
        return FakeAPIError(
            code: 422, reason: "Invalid",
            message: "\(qualifiedKind) \"\(name)\" is invalid: \(field): \(causeMessage)", details: details)
    }

    static func invalid(
        _ resource: FakeAPIResource, name: String, field: String, causeReason: String,
        causeMessage: String
    ) -> FakeAPIError {
        self.invalid(
            kind: resource.kind, group: resource.group, name: name, field: field, causeReason: causeReason,
            causeMessage: causeMessage)
    }

    /// A failure while applying a patch (a JSON patch `test` that failed, a path that is not there).
    static func unprocessable(_ message: String) -> FakeAPIError {
        FakeAPIError(code: 422, reason: "Invalid", message: message)
    }

    static func unsupportedMediaType(_ contentType: String, accepted: [String]) -> FakeAPIError {
        FakeAPIError(
            code: 415, reason: "UnsupportedMediaType",
            message: "the body of the request was in an unknown format - accepted media types include: "
                + accepted.joined(separator: ", "),
            details: ["causes": [.object(["reason": "ContentType", "message": .string(contentType)])]])
    }

    static func expired(_ message: String) -> FakeAPIError {
        FakeAPIError(code: 410, reason: "Expired", message: message)
    }

    static func tooOldResourceVersion(_ requested: Int64, oldest: Int64) -> FakeAPIError {
        self.expired("too old resource version: \(requested) (\(oldest))")
    }

    static let continueTooOld = FakeAPIError.expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list "
            + "without the continue parameter, or use the continue token in this response to retrieve the remainder "
            + "of the results. Continuing with the provided token results in an inconsistent list - objects that were "
            + "created, modified, or deleted between the time the first chunk was returned and now may show up in the "
            + "list.")

    static let requestTooLarge = FakeAPIError(
        code: 413, reason: "RequestEntityTooLarge", message: "Request entity too large: limit is 3145728")

    static func internalError(_ message: String) -> FakeAPIError {
        FakeAPIError(code: 500, reason: nil, message: message)
    }
}
