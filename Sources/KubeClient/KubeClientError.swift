public import KubeModel

/// An error from the Kubernetes API or on the way to it.
public struct KubeClientError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Value: String {
            case api
            case transport
            case malformedResponse
            case malformedWatchEvent
            case configuration
        }

        let value: Value

        public static let api = Code(value: .api)
        public static let transport = Code(value: .transport)
        public static let malformedResponse = Code(value: .malformedResponse)
        public static let malformedWatchEvent = Code(value: .malformedWatchEvent)
        public static let configuration = Code(value: .configuration)

        public var description: String { self.value.rawValue }
    }

    public var code: Code
    public var message: String
    /// For `.api`: the `Status` the server answered, with its code and reason.
    public var status: meta.v1.Status?
    /// `METHOD path` of the request that failed.
    public var request: String?
    public var cause: (any Error & Sendable)?

    public init(
        code: Code, message: String, status: meta.v1.Status? = nil, request: String? = nil,
        cause: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.status = status
        self.request = request
        self.cause = cause
    }

    /// The HTTP status of an API error.
    public var httpStatus: Int? { self.status?.code }
    /// The API's reason: `NotFound`, `Conflict`, `AlreadyExists`, `Expired`, `Gone`, `Invalid`, ...
    public var reason: String? { self.status?.reason }

    public var isNotFound: Bool { self.httpStatus == 404 }
    public var isConflict: Bool { self.httpStatus == 409 }
    public var isGone: Bool { self.httpStatus == 410 || self.reason == "Expired" || self.reason == "Gone" }

    public var description: String {
        var text = self.request.map { "\($0): " } ?? ""
        if let status = self.status {
            text += "\(status.code.map(String.init) ?? "?") \(status.reason ?? ""): \(status.message ?? self.message)"
        } else {
            text += self.message
        }
        if let cause = self.cause { text += " (\(cause))" }
        return text
    }

    static func malformedWatchEvent(_ message: String) -> KubeClientError {
        KubeClientError(code: .malformedWatchEvent, message: message)
    }
}
