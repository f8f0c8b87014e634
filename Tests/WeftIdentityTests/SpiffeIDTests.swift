import Foundation
import Testing
import WeftIdentity

@Suite struct SpiffeIDTests {
    static let valid: [(String, String, [String])] = [
        ("spiffe://cluster.local/ns/shop/sa/web", "cluster.local", ["ns", "shop", "sa", "web"]),
        ("spiffe://example.org", "example.org", []),
        ("spiffe://example.org/workload", "example.org", ["workload"]),
        ("spiffe://a_b-c.d9/Path.With-All_Chars/x", "a_b-c.d9", ["Path.With-All_Chars", "x"]),
        ("spiffe://td/...", "td", ["..."]),
    ]

    @Test(arguments: valid)
    func parsesValidIDs(_ input: String, _ trustDomain: String, _ segments: [String]) throws {
        let id = try SpiffeID(input)
        #expect(id.trustDomain.name == trustDomain)
        #expect(id.segments == segments)
        #expect(id.description == input)
    }

    static let invalid: [(String, String)] = [
        ("", "cannot be empty"),
        ("http://example.org/x", "scheme"),
        ("SPIFFE://example.org/x", "scheme"),
        ("spiffe:/example.org/x", "scheme"),
        ("spiffe://", "trust domain is missing"),
        ("spiffe:///path", "trust domain is missing"),
        ("spiffe://example.org:8080/x", "port"),
        ("spiffe://user@example.org/x", "userinfo"),
        ("spiffe://example.org/x?query=1", "query"),
        ("spiffe://example.org/x#frag", "fragment"),
        ("spiffe://Example.org/x", "lowercase"),
        ("spiffe://exa mple.org/x", "limited to lowercase letters"),
        ("spiffe://example.org/", "trailing slash"),
        ("spiffe://example.org/ns/", "trailing slash"),
        ("spiffe://example.org//x", "empty segments"),
        ("spiffe://example.org/a/./b", "dot segments"),
        ("spiffe://example.org/a/../b", "dot segments"),
        ("spiffe://example.org/a%20b", "percent-encoded"),
        ("spiffe://example.org/a b", "limited to letters"),
        ("spiffe://example.org/caf\u{e9}", "limited to letters"),
        ("spiffe://example.org/x\u{0}", "U+0000"),
        ("spiffe://" + String(repeating: "a", count: 256) + "/x", "at most 255"),
        ("spiffe://example.org/" + String(repeating: "a", count: 2048), "at most 2048"),
    ]

    @Test(arguments: invalid)
    func refusesInvalidIDsSayingWhy(_ input: String, _ fragment: String) {
        #expect {
            try SpiffeID(input)
        } throws: { error in
            guard let error = error as? IdentityError else { return false }
            return error.code == .invalidSpiffeID && error.message.contains(fragment)
        }
    }

    @Test func workloadIdentityAccessors() throws {
        let id = try SpiffeID(trustDomain: TrustDomain("cluster.local"), namespace: "shop", serviceAccount: "web")
        #expect(id.description == "spiffe://cluster.local/ns/shop/sa/web")
        #expect(id.namespace == "shop")
        #expect(id.serviceAccount == "web")
        #expect(id.isWorkloadIdentity)
        #expect(id.path == "/ns/shop/sa/web")
        let other = try SpiffeID("spiffe://cluster.local/ns/shop/workload/web")
        #expect(other.namespace == nil)
        #expect(other.serviceAccount == nil)
        #expect(try SpiffeID("spiffe://cluster.local").namespace == nil)
    }

    @Test func workloadIdentityRefusesInvalidSegments() {
        #expect(throws: IdentityError.self) {
            try SpiffeID(trustDomain: TrustDomain("cluster.local"), namespace: "", serviceAccount: "web")
        }
        #expect(throws: IdentityError.self) {
            try SpiffeID(trustDomain: TrustDomain("cluster.local"), namespace: "shop", serviceAccount: "a/b")
        }
    }

    @Test func codableAsItsString() throws {
        let id = try SpiffeID("spiffe://cluster.local/ns/shop/sa/web")
        let json = try JSONEncoder().encode([id])
        #expect(String(decoding: json, as: UTF8.self) == #"["spiffe:\/\/cluster.local\/ns\/shop\/sa\/web"]"#)
        #expect(try JSONDecoder().decode([SpiffeID].self, from: json) == [id])
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode([SpiffeID].self, from: Data(#"["spiffe://x/../y"]"#.utf8))
        }
        let domain = try JSONDecoder().decode([TrustDomain].self, from: Data(#"["cluster.local"]"#.utf8))
        #expect(domain == [try TrustDomain("cluster.local")])
    }

    @Test func hashableByValue() throws {
        let set: Set = [try SpiffeID("spiffe://td/a"), try SpiffeID("spiffe://td/a"), try SpiffeID("spiffe://td/b")]
        #expect(set.count == 2)
        #expect(try TrustDomain("td").spiffeID == SpiffeID("spiffe://td"))
    }
}
