/// A SPIFFE ID: `spiffe://<trust-domain>/<path>`, as the SPIFFE ID specification defines it.
///
/// Weft's workload identities have the path `/ns/<namespace>/sa/<serviceaccount>`
/// (``init(trustDomain:namespace:serviceAccount:)``, ``namespace``, ``serviceAccount``), but any valid
/// SPIFFE ID parses. The rules enforced (with an error saying which one is broken):
///
/// - the scheme is exactly `spiffe://`;
/// - the trust domain is 1-255 characters of lowercase letters, digits, `.`, `-`, `_` (so no port, no
///   userinfo);
/// - no query (`?`) and no fragment (`#`);
/// - path segments are non-empty, are not `.` or `..`, and use only letters, digits, `.`, `-`, `_`
///   (no percent-encoding); no trailing `/`;
/// - the whole ID is at most 2048 bytes.
///
/// Encoded (Codable) as its string; equal IDs have equal strings.
public struct SpiffeID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The longest SPIFFE ID the specification allows, in bytes.
    public static let maximumLength = 2048
    static let scheme = "spiffe://"

    /// The trust domain (the authority part).
    public let trustDomain: TrustDomain
    /// The path segments, e.g. `["ns", "shop", "sa", "web"]`; empty for the trust domain's own ID.
    public let segments: [String]

    /// Parses a SPIFFE ID.
    /// - Throws: ``IdentityError`` with code `invalidSpiffeID`, saying what is wrong.
    public init(_ string: String) throws {
        guard !string.isEmpty else { throw IdentityError(.invalidSpiffeID, "a SPIFFE ID cannot be empty") }
        guard string.utf8.count <= Self.maximumLength else {
            throw IdentityError(
                .invalidSpiffeID,
                "the SPIFFE ID is \(string.utf8.count) bytes long; at most \(Self.maximumLength) are allowed"
            )
        }
        guard string.hasPrefix(Self.scheme) else {
            throw IdentityError(.invalidSpiffeID, "the scheme is missing or invalid: a SPIFFE ID starts with spiffe://")
        }
        let rest = string.dropFirst(Self.scheme.count)
        if let mark = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            let what = rest[mark] == "?" ? "query" : "fragment"
            throw IdentityError(.invalidSpiffeID, "a SPIFFE ID may not carry a \(what)")
        }
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        let trustDomain = try TrustDomain(String(rest[..<authorityEnd]))
        let path = rest[authorityEnd...]
        var segments: [String] = []
        if !path.isEmpty {
            guard path != "/" && !path.hasSuffix("/") else {
                throw IdentityError(.invalidSpiffeID, "the path cannot have a trailing slash")
            }
            for segment in path.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
                try Self.validate(segment: segment)
                segments.append(String(segment))
            }
        }
        self.trustDomain = trustDomain
        self.segments = segments
    }

    /// Builds a SPIFFE ID from a trust domain and path segments, validating each segment.
    /// - Throws: ``IdentityError`` with code `invalidSpiffeID` when a segment is invalid or the ID too long.
    public init(trustDomain: TrustDomain, segments: [String]) throws {
        for segment in segments { try Self.validate(segment: segment[...]) }
        self.init(validatedTrustDomain: trustDomain, segments: segments)
        guard description.utf8.count <= Self.maximumLength else {
            throw IdentityError(
                .invalidSpiffeID,
                "the SPIFFE ID is \(description.utf8.count) bytes long; at most \(Self.maximumLength) are allowed"
            )
        }
    }

    /// A Weft workload identity: `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceAccount>`.
    /// - Throws: ``IdentityError`` with code `invalidSpiffeID` when the namespace or name is not a valid segment.
    public init(trustDomain: TrustDomain, namespace: String, serviceAccount: String) throws {
        try self.init(trustDomain: trustDomain, segments: ["ns", namespace, "sa", serviceAccount])
    }

    init(validatedTrustDomain: TrustDomain, segments: [String]) {
        self.trustDomain = validatedTrustDomain
        self.segments = segments
    }

    /// The path, `""` or `/seg1/seg2/...`.
    public var path: String { segments.map { "/" + $0 }.joined() }

    /// The namespace when the path is `/ns/<namespace>/sa/<serviceaccount>`, otherwise nil.
    public var namespace: String? { isWorkloadIdentity ? segments[1] : nil }

    /// The service account when the path is `/ns/<namespace>/sa/<serviceaccount>`, otherwise nil.
    public var serviceAccount: String? { isWorkloadIdentity ? segments[3] : nil }

    /// Whether the path has the Kubernetes workload shape `/ns/<namespace>/sa/<serviceaccount>`.
    public var isWorkloadIdentity: Bool { segments.count == 4 && segments[0] == "ns" && segments[2] == "sa" }

    /// The ID as a string, `spiffe://<trust-domain><path>`.
    public var description: String { Self.scheme + trustDomain.name + path }

    public static func < (lhs: SpiffeID, rhs: SpiffeID) -> Bool { lhs.description < rhs.description }

    static func validate(segment: Substring) throws {
        guard !segment.isEmpty else {
            throw IdentityError(.invalidSpiffeID, "the path cannot contain empty segments")
        }
        guard segment != "." && segment != ".." else {
            throw IdentityError(.invalidSpiffeID, "the path cannot contain dot segments (\"\(segment)\")")
        }
        for scalar in segment.unicodeScalars {
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "-", "_": continue
            case "%":
                throw IdentityError(.invalidSpiffeID, "path segments may not be percent-encoded")
            default:
                throw IdentityError(
                    .invalidSpiffeID,
                    "path segment characters are limited to letters, digits, '.', '-' and '_' (found \(describe(scalar)))"
                )
            }
        }
    }
}

extension SpiffeID: Codable {
    /// Decodes a SPIFFE ID from its string, validating it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        try self.init(container.decode(String.self))
    }

    /// Encodes the SPIFFE ID as its string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
