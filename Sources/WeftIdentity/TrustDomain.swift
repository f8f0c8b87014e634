/// A SPIFFE trust domain name, such as `cluster.local`: the authority part of a SPIFFE ID.
///
/// Per the SPIFFE ID specification a trust domain is 1 to 255 characters of lowercase letters, digits,
/// `.`, `-` and `_`; it has no port and no userinfo. Encoded (Codable) as its string.
public struct TrustDomain: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The longest trust domain name the SPIFFE specification allows, in bytes.
    public static let maximumLength = 255

    /// The trust domain name, e.g. `cluster.local`.
    public let name: String

    /// Validates `name` as a trust domain.
    /// - Throws: ``IdentityError`` with code `invalidSpiffeID`, saying which rule is broken.
    public init(_ name: String) throws {
        try Self.validate(name)
        self.name = name
    }

    /// The trust domain's own SPIFFE ID, `spiffe://<name>` (the ID with an empty path).
    public var spiffeID: SpiffeID { SpiffeID(validatedTrustDomain: self, segments: []) }

    /// The trust domain name.
    public var description: String { name }

    public static func < (lhs: TrustDomain, rhs: TrustDomain) -> Bool { lhs.name < rhs.name }

    static func validate(_ name: String) throws {
        guard !name.isEmpty else { throw IdentityError(.invalidSpiffeID, "the trust domain is missing") }
        guard name.utf8.count <= maximumLength else {
            throw IdentityError(
                .invalidSpiffeID,
                "the trust domain is \(name.utf8.count) bytes long; at most \(maximumLength) are allowed"
            )
        }
        for character in name.unicodeScalars where !isTrustDomainCharacter(character) {
            let what: String
            switch character {
            case ":": what = "a trust domain may not carry a port"
            case "@": what = "a trust domain may not carry userinfo"
            case "?": what = "a SPIFFE ID may not carry a query"
            case "#": what = "a SPIFFE ID may not carry a fragment"
            case "A"..."Z": what = "trust domain characters must be lowercase (found \"\(character)\")"
            default:
                what =
                    "trust domain characters are limited to lowercase letters, digits, '.', '-' and '_' "
                    + "(found \(describe(character)))"
            }
            throw IdentityError(.invalidSpiffeID, what)
        }
    }

    static func isTrustDomainCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "0"..."9", ".", "-", "_": true
        default: false
        }
    }
}

extension TrustDomain: Codable {
    /// Decodes a trust domain from its string, validating it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        try self.init(container.decode(String.self))
    }

    /// Encodes the trust domain as its string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }
}

/// `"x"` for a printable character, `U+0020` style otherwise (so messages never carry control characters).
func describe(_ scalar: Unicode.Scalar) -> String {
    if scalar.value > 0x20 && scalar.value < 0x7F { return "\"\(scalar)\"" }
    return "U+" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 4)
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
