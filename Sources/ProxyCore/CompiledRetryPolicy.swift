import ProxyConfig

/// What a try ended with, as the retry logic sees it.
public enum TryOutcome: Sendable, Hashable {
    /// A response arrived. `grpcStatus` is the `grpc-status` from the headers (trailers-only) or the trailers.
    case response(status: Int, grpcStatus: Int?)
    /// The stream or connection was reset before a complete response.
    case reset
    /// HTTP/2 REFUSED_STREAM: the upstream did not process the request.
    case refusedStream
    /// The connection to the endpoint could not be established.
    case connectFailure
    /// The per-try timeout fired.
    case perTryTimeout
}

/// The `retryOn` conditions of a `RetryPolicy`, parsed once per config.
public struct RetryConditions: Sendable, Hashable {
    private struct Flags: OptionSet, Sendable, Hashable {
        let rawValue: UInt8
        static let serverError = Flags(rawValue: 1 << 0)
        static let gatewayError = Flags(rawValue: 1 << 1)
        static let reset = Flags(rawValue: 1 << 2)
        static let connectFailure = Flags(rawValue: 1 << 3)
        static let retriable4xx = Flags(rawValue: 1 << 4)
        static let refusedStream = Flags(rawValue: 1 << 5)
    }

    /// The gRPC status names `retryOn` accepts, with their codes.
    public static let grpcStatusCodes: [String: Int] = [
        "cancelled": 1, "deadline-exceeded": 4, "resource-exhausted": 8, "internal": 13, "unavailable": 14,
    ]

    private var flags: Flags = []
    /// Bit `n` set: retry on gRPC status `n`.
    private var grpcCodes: UInt32 = 0
    /// Explicit HTTP status codes, ascending.
    public private(set) var statusCodes: [Int] = []
    /// Tokens that were not understood (the compiler should have rejected them); ignored.
    public private(set) var unknownTokens: [String] = []

    /// Parses `retryOn` tokens: `5xx`, `gateway-error`, `reset`, `connect-failure`, `retriable-4xx`,
    /// `refused-stream`, gRPC status names and numeric status codes.
    public init(_ retryOn: [String]) {
        for token in retryOn {
            switch token {
            case "5xx": self.flags.insert(.serverError)
            case "gateway-error": self.flags.insert(.gatewayError)
            case "reset": self.flags.insert(.reset)
            case "connect-failure": self.flags.insert(.connectFailure)
            case "retriable-4xx": self.flags.insert(.retriable4xx)
            case "refused-stream": self.flags.insert(.refusedStream)
            default:
                if let code = Self.grpcStatusCodes[token] {
                    self.grpcCodes |= 1 << UInt32(code)
                } else if let status = Int(token), (100...599).contains(status) {
                    self.statusCodes.append(status)
                } else {
                    self.unknownTokens.append(token)
                }
            }
        }
        self.statusCodes.sort()
    }

    /// Whether `outcome` is one to retry. A per-try timeout counts as a gateway error (504) and a reset;
    /// a connect failure as a gateway error (503); `5xx` covers every failure without a response, as in Envoy.
    public func matches(_ outcome: TryOutcome) -> Bool {
        switch outcome {
        case .response(let status, let grpcStatus):
            if let grpcStatus, (1..<32).contains(grpcStatus), self.grpcCodes & (1 << UInt32(grpcStatus)) != 0 {
                return true
            }
            if self.flags.contains(.serverError) && (500...599).contains(status) { return true }
            if self.flags.contains(.gatewayError) && (502...504).contains(status) { return true }
            if self.flags.contains(.retriable4xx) && status == 409 { return true }
            return self.statusCodes.contains(status)
        case .reset:
            return self.flags.contains(.serverError) || self.flags.contains(.reset)
        case .refusedStream:
            return self.flags.contains(.serverError) || self.flags.contains(.refusedStream)
        case .connectFailure:
            return !self.flags.isDisjoint(with: [.serverError, .gatewayError, .connectFailure])
        case .perTryTimeout:
            return !self.flags.isDisjoint(with: [.serverError, .gatewayError, .reset]) || self.statusCodes.contains(504)
        }
    }
}

/// A `RetryPolicy` prepared for the request path: conditions parsed, durations in nanoseconds.
public struct CompiledRetryPolicy: Sendable, Hashable {
    /// Retries after the first try.
    public var attempts: Int
    /// The per-try timeout, if any.
    public var perTryTimeoutNanos: UInt64?
    /// When to retry.
    public var conditions: RetryConditions
    /// Whether non-idempotent requests (POST, PATCH, ...) may be retried.
    public var retryNonIdempotent: Bool
    /// The first backoff ceiling; it doubles per retry.
    public var backoffBaseNanos: UInt64
    /// The largest backoff ceiling.
    public var backoffMaxNanos: UInt64

    /// Compiles `policy`.
    public init(_ policy: RetryPolicy) {
        self.attempts = max(0, policy.attempts)
        self.perTryTimeoutNanos = policy.perTryTimeoutMs.flatMap { $0 > 0 ? Nanoseconds.fromMilliseconds($0) : nil }
        self.conditions = RetryConditions(policy.retryOn)
        self.retryNonIdempotent = policy.retryNonIdempotent
        self.backoffBaseNanos = Nanoseconds.fromMilliseconds(policy.backoffBaseMs)
        self.backoffMaxNanos = max(Nanoseconds.fromMilliseconds(policy.backoffMaxMs), self.backoffBaseNanos)
    }

    /// Whether `method` is idempotent (RFC 9110): GET, HEAD, OPTIONS, PUT, DELETE, TRACE. Case-sensitive.
    public static func isIdempotent(method: String) -> Bool {
        switch method {
        case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE": true
        default: false
        }
    }
}
