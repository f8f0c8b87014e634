import Crypto
import Foundation
import Testing
import WeftIdentity
import WeftTesting

/// The real `openssl` binary reads and verifies what the CA issues.
@Suite struct OpenSSLCrossCheckTests {
    @Test func opensslShowsTheSVIDFields() async throws {
        // A serial with the top bit set must still be a positive INTEGER.
        let ca = try CertificateAuthority(
            secret: TestPKI.root().secret, trustDomain: TestPKI.trustDomain,
            serialNumbers: SerialNumberGenerator { [UInt8](repeating: 0xFF, count: 16) })
        let issued = try TestPKI.issue(ca)
        let dir = try TemporaryDirectory()
        let leaf = try dir.write("leaf.pem", issued.certificatePEM)
        let text = try await runProcess("openssl", ["x509", "-noout", "-text", "-in", leaf])
        #expect(text.status == 0)
        #expect(text.output.contains("URI:spiffe://cluster.local/ns/shop/sa/web"))
        #expect(text.output.contains("X509v3 Extended Key Usage:"))
        #expect(text.output.contains("TLS Web Server Authentication, TLS Web Client Authentication"))
        #expect(text.output.contains("X509v3 Subject Alternative Name: critical"))
        #expect(text.output.contains("CA:FALSE"))
        #expect(text.output.contains("ASN1 OID: prime256v1"))
        #expect(!text.output.contains("DNS:"))
        #expect(text.output.contains("Serial Number:\n            ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff:ff"))
        #expect(!text.output.contains("Negative"))
    }

    @Test func opensslVerifiesALeafFromTheRoot() async throws {
        let (secret, _) = try TestPKI.root()
        let ca = try TestPKI.authority(secret)
        let issued = try TestPKI.issue(ca)
        let dir = try TemporaryDirectory()
        let root = try dir.write("root.pem", secret.trustRootsPEM ?? "")
        let leaf = try dir.write("leaf.pem", issued.certificatePEM)
        let result = try await Self.verify(root: root, untrusted: nil, leaf: leaf)
        #expect(result.status == 0)
        #expect(result.output.contains("\(leaf): OK"))
    }

    @Test func opensslVerifiesALeafThroughAUserIntermediate() async throws {
        let (rootSecret, rootKey) = try TestPKI.root()
        let rootCertificate = try TestPKI.certificate(rootSecret.certificatePEM)
        let team = try TestPKI.intermediate(name: "Team CA", issuer: rootCertificate, issuerKey: rootKey)
        let ca = try TestPKI.authority(
            MeshCASecret(
                certificatePEM: try TestPKI.pem(team.certificate), privateKeyPEM: team.key.pemRepresentation,
                trustRootsPEM: rootSecret.certificatePEM))
        let issued = try TestPKI.issue(ca)
        let dir = try TemporaryDirectory()
        let root = try dir.write("root.pem", try ca.trustBundle.pemEncoded())
        let chain = try dir.write("chain.pem", issued.chainPEMs.joined())
        let leaf = try dir.write("leaf.pem", issued.certificatePEM)
        let result = try await Self.verify(root: root, untrusted: chain, leaf: leaf)
        #expect(result.status == 0)
        #expect(result.output.contains("\(leaf): OK"))
        // And without the intermediate it does not verify: the check can fail.
        let without = try await Self.verify(root: root, untrusted: nil, leaf: leaf)
        #expect(without.status != 0)
    }

    /// `openssl verify` at the tests' fixed time, with OpenSSL's strict X.509 checks and the SSL client purpose.
    static func verify(root: String, untrusted: String?, leaf: String) async throws -> (status: Int32, output: String) {
        var arguments = [
            "verify", "-x509_strict", "-purpose", "sslclient", "-attime", "\(Int(TestPKI.now.timeIntervalSince1970))",
            "-CAfile", root,
        ]
        if let untrusted { arguments += ["-untrusted", untrusted] }
        return try await runProcess("openssl", arguments + [leaf])
    }
}

/// A directory under the system's temporary directory, removed when the value is released.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("weft-identity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ contents: String) throws -> String {
        let file = url.appendingPathComponent(name)
        try contents.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Runs `tool` (looked up on PATH) to completion and returns its exit status and combined output.
func runProcess(_ tool: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
    let result = try await ChildProcess.run([tool] + arguments, mergeStandardError: true)
    return (result.status, result.stdoutText)
}
