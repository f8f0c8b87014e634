import Crypto
import Foundation
import SwiftASN1
import Testing
import WeftIdentity
import X509

@Suite struct CertificateAuthorityTests {
    // MARK: - Root generation

    @Test func generatedRootHasTheDocumentedFields() throws {
        let (secret, key) = try TestPKI.root()
        let root = try TestPKI.certificate(secret.certificatePEM)
        #expect(secret.trustRootsPEM == secret.certificatePEM)
        #expect(secret.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----"))  // PKCS#8
        #expect(
            try P256.Signing.PrivateKey(pemRepresentation: secret.privateKeyPEM).publicKey.rawRepresentation
                == key.publicKey.rawRepresentation)
        #expect(root.subject == root.issuer)
        #expect(root.subject.description == "CN=Weft mesh CA,O=cluster.local")  // RFC 4514 order: last RDN first
        #expect(P256.Signing.PublicKey(root.publicKey) != nil)
        #expect(root.signatureAlgorithm == .ecdsaWithSHA256)
        #expect(root.notValidBefore == TestPKI.now.addingTimeInterval(-60))
        #expect(root.notValidAfter == TestPKI.now.addingTimeInterval(10 * 365 * 24 * 3600))
        let constraints = try #require(root.extensions[oid: .X509ExtensionID.basicConstraints])
        #expect(constraints.critical)
        #expect(try BasicConstraints(constraints) == .isCertificateAuthority(maxPathLength: nil))
        let usage = try #require(root.extensions[oid: .X509ExtensionID.keyUsage])
        #expect(usage.critical)
        #expect(try KeyUsage(usage) == KeyUsage(keyCertSign: true, cRLSign: true))
        #expect(try root.extensions.subjectKeyIdentifier == SubjectKeyIdentifier(hash: root.publicKey))
        #expect(root.serialNumber == Certificate.SerialNumber(bytes: [1]))
    }

    @Test func secretDataRoundTripsWithTheDocumentedKeys() throws {
        let (secret, _) = try TestPKI.root()
        #expect(MeshCASecret.secretType == "kubernetes.io/tls")
        #expect(Set(secret.secretData.keys) == ["tls.crt", "tls.key", "ca.crt"])
        #expect(try MeshCASecret(secretData: secret.secretData) == secret)
        #expect(
            errorCode { _ = try MeshCASecret(secretData: ["tls.crt": Data("x".utf8)]) } == .invalidCertificateAuthority)
    }

    // MARK: - Loading CA material

    @Test func refusesAKeyThatDoesNotMatch() throws {
        let (secret, _) = try TestPKI.root()
        let (other, _) = try TestPKI.root()
        let mixed = MeshCASecret(certificatePEM: secret.certificatePEM, privateKeyPEM: other.privateKeyPEM)
        #expect(errorCode { _ = try TestPKI.authority(mixed) } == .invalidCertificateAuthority)
    }

    @Test func refusesAnIntermediateWithoutItsRoot() throws {
        let (rootSecret, rootKey) = try TestPKI.root()
        let root = try TestPKI.certificate(rootSecret.certificatePEM)
        let intermediate = try TestPKI.intermediate(name: "Team CA", issuer: root, issuerKey: rootKey)
        let secret = MeshCASecret(
            certificatePEM: try TestPKI.pem(intermediate.certificate), privateKeyPEM: intermediate.key.pemRepresentation
        )
        #expect(throws: IdentityError.self) { _ = try TestPKI.authority(secret) }
        #expect(errorCode { _ = try TestPKI.authority(secret) } == .invalidCertificateAuthority)
    }

    @Test func refusesALeafAsCA() throws {
        let ca = try TestPKI.authority(TestPKI.root().secret)
        let key = P256.Signing.PrivateKey()
        let issued = try ca.issue(
            csrPEM: CSRBuilder.make(identity: TestPKI.web, key: key), for: TestPKI.web, now: TestPKI.now)
        let asCA = MeshCASecret(
            certificatePEM: issued.certificatePEM, privateKeyPEM: key.pemRepresentation,
            trustRootsPEM: try ca.certificatePEM)
        #expect(errorCode { _ = try TestPKI.authority(asCA) } == .invalidCertificateAuthority)
        #expect(
            errorCode { _ = try TestPKI.authority(MeshCASecret(certificatePEM: "nope", privateKeyPEM: "")) }
                == .invalidEncoding)
    }

    @Test func loadsAUserIntermediateWithItsChain() throws {
        let (rootSecret, rootKey) = try TestPKI.root()
        let root = try TestPKI.certificate(rootSecret.certificatePEM)
        let team = try TestPKI.intermediate(name: "Team CA", issuer: root, issuerKey: rootKey)
        let mesh = try TestPKI.intermediate(name: "Mesh CA", issuer: team.certificate, issuerKey: team.key)
        // tls.crt: signing certificate then its issuer; ca.crt: the root (cert-manager's layout).
        let secret = MeshCASecret(
            certificatePEM: try TestPKI.pem(mesh.certificate) + TestPKI.pem(team.certificate),
            privateKeyPEM: mesh.key.pemRepresentation,
            trustRootsPEM: rootSecret.certificatePEM)
        let ca = try TestPKI.authority(secret)
        #expect(ca.certificate == mesh.certificate)
        #expect(ca.intermediates == [team.certificate])
        #expect(ca.root == root)
        #expect(ca.trustBundle.roots == [root])
        let issued = try TestPKI.issue(ca)
        #expect(issued.chain == [mesh.certificate, team.certificate])
        #expect(issued.chainPEMs.count == 2)
    }

    // MARK: - Issuing

    @Test func issuesAnX509SVID() throws {
        let ca = try TestPKI.authority(TestPKI.root().secret)
        let issued = try TestPKI.issue(ca)
        let leaf = issued.certificate
        #expect(issued.identity == TestPKI.web)
        #expect(issued.chain.isEmpty)  // signed by the root directly
        #expect(leaf.subject == DistinguishedName())
        #expect(leaf.issuer == ca.certificate.subject)
        #expect(P256.Signing.PublicKey(leaf.publicKey) != nil)
        #expect(issued.notBefore == TestPKI.now.addingTimeInterval(-60))
        #expect(issued.notAfter == TestPKI.now.addingTimeInterval(24 * 3600))
        let san = try #require(leaf.extensions[oid: .X509ExtensionID.subjectAlternativeName])
        #expect(san.critical)
        #expect(Array(try SubjectAlternativeNames(san)) == [.uniformResourceIdentifier(TestPKI.web.description)])
        let basic = try #require(leaf.extensions[oid: .X509ExtensionID.basicConstraints])
        #expect(basic.critical)
        #expect(try BasicConstraints(basic) == .notCertificateAuthority)
        let usage = try #require(leaf.extensions[oid: .X509ExtensionID.keyUsage])
        #expect(usage.critical)
        #expect(try KeyUsage(usage) == KeyUsage(digitalSignature: true))
        #expect(Array(try #require(try leaf.extensions.extendedKeyUsage)) == [.serverAuth, .clientAuth])
        #expect(
            try leaf.extensions.authorityKeyIdentifier?.keyIdentifier
                == ca.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        #expect(try leaf.extensions.subjectKeyIdentifier == SubjectKeyIdentifier(hash: leaf.publicKey))
        #expect(issued.serialNumber == Certificate.SerialNumber(bytes: [1]))
        #expect(try TestPKI.issue(ca).serialNumber == Certificate.SerialNumber(bytes: [2]))
        #expect(issued.fullChainPEM == issued.certificatePEM)
    }

    @Test func randomSerialsArePositive128BitValues() {
        let high = SerialNumberGenerator { [UInt8](repeating: 0xFF, count: 16) }.next()
        #expect(Array(high.bytes) == [UInt8](repeating: 0xFF, count: 16))
        #expect(Array(SerialNumberGenerator { [UInt8](repeating: 0xAB, count: 20) }.next().bytes).count == 16)
        #expect(Array(SerialNumberGenerator { [0, 0] }.next().bytes) == [1])
        let random = SerialNumberGenerator.random.next()
        #expect(random.bytes.count <= 16)
        #expect(SerialNumberGenerator.random.next() != random)
    }

    @Test func leafLifetimeIsCappedByTheCA() throws {
        let ca = try TestPKI.authority(TestPKI.root(validity: 3600).secret)
        let issued = try TestPKI.issue(ca, now: TestPKI.now.addingTimeInterval(1800))
        #expect(issued.notAfter == ca.certificate.notValidAfter)
        #expect(issued.notAfter == TestPKI.now.addingTimeInterval(3600))
        let custom = try TestPKI.issue(ca, lifetime: 600)
        #expect(custom.notAfter == TestPKI.now.addingTimeInterval(600))
        #expect(
            errorCode { _ = try TestPKI.issue(ca, now: TestPKI.now.addingTimeInterval(3600)) }
                == .certificateAuthorityNotValid)
        #expect(
            errorCode { _ = try TestPKI.issue(ca, now: TestPKI.now.addingTimeInterval(-120)) }
                == .certificateAuthorityNotValid)
        #expect(errorCode { _ = try TestPKI.issue(ca, lifetime: 0) } == .invalidArgument)
    }

    @Test func leafLifetimeIsCappedByAnIntermediate() throws {
        let (rootSecret, rootKey) = try TestPKI.root()
        let root = try TestPKI.certificate(rootSecret.certificatePEM)
        let team = try TestPKI.intermediate(name: "Team CA", issuer: root, issuerKey: rootKey, validity: 7200)
        let ca = try TestPKI.authority(
            MeshCASecret(
                certificatePEM: try TestPKI.pem(team.certificate), privateKeyPEM: team.key.pemRepresentation,
                trustRootsPEM: rootSecret.certificatePEM))
        #expect(try TestPKI.issue(ca).notAfter == TestPKI.now.addingTimeInterval(7200))
    }

    // MARK: - Refused CSRs

    @Test func refusesACSRForAnotherIdentity() throws {
        let ca = try TestPKI.authority(TestPKI.root().secret)
        let csr = try CSRBuilder.make(identity: TestPKI.web, key: P256.Signing.PrivateKey())
        let token = try SpiffeID("spiffe://cluster.local/ns/shop/sa/db")
        #expect(throws: IdentityError.self) { try ca.issue(csrPEM: csr, for: token, now: TestPKI.now) }
        #expect(errorCode { _ = try ca.issue(csrPEM: csr, for: token, now: TestPKI.now) } == .csrIdentityMismatch)
        let foreign = try SpiffeID("spiffe://other.example/ns/shop/sa/web")
        let foreignCSR = try CSRBuilder.make(identity: foreign, key: P256.Signing.PrivateKey())
        #expect(
            errorCode { _ = try ca.issue(csrPEM: foreignCSR, for: foreign, now: TestPKI.now) } == .csrIdentityMismatch)
    }

    @Test func refusesACSRWithOtherOrExtraNames() throws {
        let ca = try TestPKI.authority(TestPKI.root().secret)
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        for names: [GeneralName] in [
            [], [.dnsName("web.shop.svc")],
            [.uniformResourceIdentifier(TestPKI.web.description), .dnsName("web.shop.svc")],
        ] {
            let csr = try Self.csr(key: key, names: names)
            #expect(errorCode { _ = try ca.issue(csrPEM: csr, for: TestPKI.web, now: TestPKI.now) } == .csrMalformed)
        }
    }

    @Test func refusesANonP256CSR() throws {
        let ca = try TestPKI.authority(TestPKI.root().secret)
        let csr = try Self.csr(
            key: Certificate.PrivateKey(P384.Signing.PrivateKey()),
            names: [.uniformResourceIdentifier(TestPKI.web.description)])
        #expect(errorCode { _ = try ca.issue(csrPEM: csr, for: TestPKI.web, now: TestPKI.now) } == .csrKeyNotP256)
    }

    @Test func refusesATamperedCSR() throws {
        let ca = try TestPKI.authority(TestPKI.root().secret)
        let pem = try CSRBuilder.make(identity: TestPKI.web, key: P256.Signing.PrivateKey())
        var der = try PEMDocument(pemString: pem).derBytes
        let needle = Array("sa/web".utf8)
        let at = try #require((0...(der.count - needle.count)).first { Array(der[$0..<($0 + needle.count)]) == needle })
        der[at + 3] = UInt8(ascii: "d")  // sa/web -> sa/deb: still a well-formed CSR, no longer the signed one
        let tampered = PEMDocument(type: "CERTIFICATE REQUEST", derBytes: der).pemString
        let deb = try SpiffeID("spiffe://cluster.local/ns/shop/sa/deb")
        #expect(errorCode { _ = try ca.issue(csrPEM: tampered, for: deb, now: TestPKI.now) } == .csrSignatureInvalid)
        #expect(errorCode { _ = try ca.issue(csrPEM: "garbage", for: deb, now: TestPKI.now) } == .invalidEncoding)
    }

    static func csr(key: Certificate.PrivateKey, names: [GeneralName]) throws -> String {
        var attributes = CertificateSigningRequest.Attributes()
        if !names.isEmpty {
            let extensions = try Certificate.Extensions { SubjectAlternativeNames(names) }
            attributes = CertificateSigningRequest.Attributes([try .init(ExtensionRequest(extensions: extensions))])
        }
        return try CertificateSigningRequest(
            version: .v1, subject: DistinguishedName(), privateKey: key, attributes: attributes
        ).serializeAsPEM().pemString
    }
}
