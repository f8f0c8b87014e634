// `WeftBench --mint-svids DIR`: one mesh CA and two SVIDs from it, made with Weft's own CA code, for the mTLS
// rows of hack/bench-proxy (two weft-proxies, and two Envoys, given certificates from the same CA).
import Crypto
import Foundation
import WeftIdentity

enum MintSVIDs {
    /// The pairs' identities: `a` originates mTLS, `b` terminates it.
    static let identities = [
        ("a", "spiffe://cluster.local/ns/bench/sa/a"),
        ("b", "spiffe://cluster.local/ns/bench/sa/b"),
    ]

    /// Writes `ca.pem` (the root), and `a-cert.pem`/`a-key.pem`, `b-cert.pem`/`b-key.pem`: ECDSA P-256 SVIDs (the
    /// leaf; the root signs them directly) valid for 24 hours, keys as PKCS#8 PEM.
    static func run(directory: String) throws {
        let now = Date()
        let domain = try TrustDomain("cluster.local")
        let secret = try CertificateAuthority.generateRoot(trustDomain: domain, now: now, serialNumbers: .random)
        let ca = try CertificateAuthority(secret: secret, trustDomain: domain, serialNumbers: .random)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try write(try ca.trustBundle.pemEncoded(), to: "\(directory)/ca.pem")
        for (name, id) in identities {
            let key = P256.Signing.PrivateKey()
            let csr = try CSRBuilder.make(identity: try SpiffeID(id), key: key)
            let svid = try ca.issue(
                csrPEM: csr, for: try SpiffeID(id), now: now, lifetime: CertificateValidity.defaultLeafLifetime)
            try write(svid.fullChainPEM, to: "\(directory)/\(name)-cert.pem")
            try write(key.pemRepresentation + "\n", to: "\(directory)/\(name)-key.pem", mode: 0o600)
            print("\(directory)/\(name)-cert.pem: \(id), valid until \(svid.notAfter)")
        }
    }

    static func write(_ text: String, to path: String, mode: Int = 0o644) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }
}
