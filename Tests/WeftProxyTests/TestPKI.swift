import Foundation
import WeftProxy

/// A throwaway mesh CA and SVIDs for mTLS tests, made with the `openssl` CLI in a temporary directory
/// (`openssl ca`, so that validity dates can lie in the past).
struct TestPKI: Sendable {
    let directory: String
    let name: String

    struct SVID: Sendable {
        let certificatePath: String
        let keyPath: String
        let spiffeID: String
        var certificatePEM: String { (try? String(contentsOfFile: self.certificatePath, encoding: .utf8)) ?? "" }
        var keyPEM: String { (try? String(contentsOfFile: self.keyPath, encoding: .utf8)) ?? "" }
    }

    var caPath: String { "\(self.directory)/\(self.name)-ca.pem" }
    var caPEM: String { (try? String(contentsOfFile: self.caPath, encoding: .utf8)) ?? "" }

    /// A new CA named `name` (a second one is "another CA").
    static func make(_ name: String = "mesh") async throws -> TestPKI {
        let directory = NSTemporaryDirectory() + "weft-pki-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pki = TestPKI(directory: directory, name: name)
        try await pki.run([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "\(directory)/\(name)-ca.key", "-out", pki.caPath, "-days", "2", "-subj", "/O=\(name) test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        try "".write(toFile: "\(directory)/index.txt", atomically: true, encoding: .utf8)
        try "01\n".write(toFile: "\(directory)/serial", atomically: true, encoding: .utf8)
        let config = """
            [ ca ]
            default_ca = weft
            [ weft ]
            database = \(directory)/index.txt
            new_certs_dir = \(directory)
            serial = \(directory)/serial
            default_md = sha256
            policy = anything
            unique_subject = no
            [ anything ]
            organizationName = optional
            """
        try config.write(toFile: "\(directory)/ca.cnf", atomically: true, encoding: .utf8)
        return pki
    }

    /// An SVID for `spiffeID` (URI SAN only, critical), valid from yesterday for two days, or (`expired`)
    /// in 2020.
    func svid(_ label: String, spiffeID: String, expired: Bool = false) async throws -> SVID {
        let key = "\(self.directory)/\(label).key"
        let csr = "\(self.directory)/\(label).csr"
        let certificate = "\(self.directory)/\(label).pem"
        let extensions = "\(self.directory)/\(label).ext"
        try """
        subjectAltName = critical,URI:\(spiffeID)
        basicConstraints = critical,CA:FALSE
        keyUsage = critical,digitalSignature,keyEncipherment
        extendedKeyUsage = serverAuth,clientAuth
        """.write(toFile: extensions, atomically: true, encoding: .utf8)
        try await self.run([
            "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            key, "-out", csr, "-subj", "/O=weft",
        ])
        let dates = expired ? ["20200101000000Z", "20200102000000Z"] : [Self.stamp(-86_400), Self.stamp(86_400)]
        try await self.run([
            "openssl", "ca", "-batch", "-config", "\(self.directory)/ca.cnf", "-cert", self.caPath, "-keyfile",
            "\(self.directory)/\(self.name)-ca.key", "-in", csr, "-out", certificate, "-notext", "-startdate",
            dates[0], "-enddate", dates[1], "-extfile", extensions,
        ])
        return SVID(certificatePath: certificate, keyPath: key, spiffeID: spiffeID)
    }

    /// The mesh TLS of a proxy holding `svid` and trusting this CA.
    func meshTLS(_ svid: SVID) -> MeshTLS {
        MeshTLS(
            source: InMemoryCertificateSource(
                TLSMaterial(
                    certificateChainPEM: svid.certificatePEM, privateKeyPEM: svid.keyPEM, trustRootsPEM: self.caPEM,
                    version: 1)))
    }

    private static func stamp(_ offset: TimeInterval) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMddHHmmss'Z'"
        return formatter.string(from: Date().addingTimeInterval(offset))
    }

    private func run(_ arguments: [String]) async throws {
        let result = try await runProcess(arguments)
        guard result.status == 0 else {
            throw HarnessError(message: "\(arguments.prefix(3).joined(separator: " ")) failed: \(result.stderr)")
        }
    }
}
