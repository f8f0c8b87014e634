import Crypto
import Foundation
import Testing
import WeftIdentity
import X509

@Suite struct SVIDVerifierTests {
    static func verifier(_ ca: CertificateAuthority) -> SVIDVerifier { SVIDVerifier(bundle: ca.trustBundle) }

    @Test func issueThenVerifyRoundTrip() async throws {
        let ca = try TestPKI.authority(TestPKI.root().secret)
        let issued = try TestPKI.issue(ca)
        let verifier = Self.verifier(ca)
        #expect(try await verifier.verify(chain: [issued.certificate], now: TestPKI.now) == TestPKI.web)
        #expect(try await verifier.verify(derChain: issued.fullChainDER, now: TestPKI.now) == TestPKI.web)
        #expect(try await verifier.verify(pemChain: issued.fullChainPEM, now: TestPKI.now) == TestPKI.web)
    }

    @Test func trustBundleShipsAsPEM() async throws {
        let ca = try TestPKI.authority(TestPKI.root().secret)
        let pem = try ca.trustBundle.pemEncoded()
        let shipped = try TrustBundle(trustDomain: TestPKI.trustDomain, rootsPEM: pem)
        #expect(shipped == ca.trustBundle)
        #expect(try shipped.derEncoded().count == 1)
        let issued = try TestPKI.issue(ca)
        #expect(
            try await SVIDVerifier(bundle: shipped).verify(chain: [issued.certificate], now: TestPKI.now) == TestPKI.web
        )
        let issuedAgain = try TestPKI.issue(ca)
        #expect(
            errorCode { _ = try TrustBundle(trustDomain: TestPKI.trustDomain, rootsPEM: issuedAgain.certificatePEM) }
                == .invalidCertificateAuthority)
        #expect(errorCode { _ = try TrustBundle(trustDomain: TestPKI.trustDomain, rootsPEM: "") } == .invalidEncoding)
    }

    @Test func intermediateChainRoundTrip() async throws {
        let (rootSecret, rootKey) = try TestPKI.root()
        let root = try TestPKI.certificate(rootSecret.certificatePEM)
        let team = try TestPKI.intermediate(name: "Team CA", issuer: root, issuerKey: rootKey)
        let ca = try TestPKI.authority(
            MeshCASecret(
                certificatePEM: try TestPKI.pem(team.certificate), privateKeyPEM: team.key.pemRepresentation,
                trustRootsPEM: rootSecret.certificatePEM))
        let issued = try TestPKI.issue(ca)
        #expect(issued.chain == [team.certificate])
        let verifier = SVIDVerifier(
            bundle: try TrustBundle(trustDomain: TestPKI.trustDomain, rootsPEM: rootSecret.certificatePEM))
        #expect(try await verifier.verify(derChain: issued.fullChainDER, now: TestPKI.now) == TestPKI.web)
        // Without the intermediate the leaf does not chain to the root.
        let leafOnly = await errorCode { _ = try await verifier.verify(chain: [issued.certificate], now: TestPKI.now) }
        #expect(leafOnly == .unknownIssuer)
    }

    @Test(
        arguments: [
            (-120.0, IdentityError.Code.notYetValid),  // before notBefore (now - 1 minute)
            (-59.0, nil),
            (24 * 3600.0, nil),  // notAfter itself is still valid
            (24 * 3600.0 + 1, .expired),
            (25 * 3600.0, .expired),
        ] as [(TimeInterval, IdentityError.Code?)])
    func timeIsPassedIn(_ offset: TimeInterval, _ expected: IdentityError.Code?) async throws {
        let ca = try TestPKI.authority(TestPKI.root().secret)
        let issued = try TestPKI.issue(ca)
        let code = await errorCode {
            _ = try await Self.verifier(ca).verify(
                chain: [issued.certificate], now: TestPKI.now.addingTimeInterval(offset))
        }
        #expect(code == expected)
    }

    @Test func anExpiredChainIsReportedAsExpired() async throws {
        let (rootSecret, rootKey) = try TestPKI.root()
        let root = try TestPKI.certificate(rootSecret.certificatePEM)
        let team = try TestPKI.intermediate(name: "Team CA", issuer: root, issuerKey: rootKey, validity: 7200)
        let ca = try TestPKI.authority(
            MeshCASecret(
                certificatePEM: try TestPKI.pem(team.certificate), privateKeyPEM: team.key.pemRepresentation,
                trustRootsPEM: rootSecret.certificatePEM))
        let issued = try TestPKI.issue(ca, lifetime: 3600)
        // Leaf and intermediate both expired: the policy names the leaf first (its lifetime is capped by the CA's).
        let code = await errorCode {
            _ = try await SVIDVerifier(bundle: ca.trustBundle).verify(
                derChain: issued.fullChainDER, now: TestPKI.now.addingTimeInterval(7300))
        }
        #expect(code == .expired)
    }

    @Test func aCertificateFromAnotherCAIsRefused() async throws {
        let ours = try TestPKI.authority(TestPKI.root().secret)
        let theirs = try TestPKI.authority(TestPKI.root().secret)  // same trust domain, another key
        let issued = try TestPKI.issue(theirs)
        #expect(theirs.certificate.subject == ours.certificate.subject)
        let code = await errorCode {
            _ = try await Self.verifier(ours).verify(chain: [issued.certificate], now: TestPKI.now)
        }
        #expect(code == .unknownIssuer)
    }

    @Test func theWrongTrustDomainIsRefused() async throws {
        let (secret, _) = try TestPKI.root()
        let other = try TrustDomain("other.example")
        let foreign = try TestPKI.authority(secret, trustDomain: other)  // same root, issuing for another domain
        let id = try SpiffeID("spiffe://other.example/ns/shop/sa/web")
        let issued = try TestPKI.issue(foreign, id)
        let ours = try TestPKI.authority(secret)
        let code = await errorCode {
            _ = try await Self.verifier(ours).verify(chain: [issued.certificate], now: TestPKI.now)
        }
        #expect(code == .wrongTrustDomain)
    }

    @Test func aLeafWithoutSpiffeIDOrThatIsACAIsRefused() async throws {
        let (secret, key) = try TestPKI.root()
        let ca = try TestPKI.authority(secret)
        let verifier = Self.verifier(ca)
        let root = ca.certificate
        func leaf(_ extensions: Certificate.Extensions) throws -> Certificate {
            let leafKey = P256.Signing.PrivateKey()
            return try Certificate(
                version: .v3, serialNumber: .init(bytes: [7]), publicKey: .init(leafKey.publicKey),
                notValidBefore: TestPKI.now.addingTimeInterval(-60),
                notValidAfter: TestPKI.now.addingTimeInterval(3600),
                issuer: root.subject, subject: try DistinguishedName { CommonName("web") },
                signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: .init(key))
        }
        let dnsOnly = try leaf(
            try Certificate.Extensions {
                Critical(KeyUsage(digitalSignature: true))
                SubjectAlternativeNames([.dnsName("web.shop.svc")])
            })
        let twoURIs = try leaf(
            try Certificate.Extensions {
                Critical(KeyUsage(digitalSignature: true))
                SubjectAlternativeNames([
                    .uniformResourceIdentifier("spiffe://cluster.local/a"),
                    .uniformResourceIdentifier("spiffe://cluster.local/b"),
                ])
            })
        let notSpiffe = try leaf(
            try Certificate.Extensions {
                Critical(KeyUsage(digitalSignature: true))
                SubjectAlternativeNames([.uniformResourceIdentifier("https://cluster.local/a")])
            })
        let isCA = try leaf(
            try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                SubjectAlternativeNames([.uniformResourceIdentifier(TestPKI.web.description)])
            })
        for (certificate, expected) in [
            (dnsOnly, IdentityError.Code.noSpiffeID), (twoURIs, .noSpiffeID), (notSpiffe, .noSpiffeID),
            (isCA, .invalidLeaf),
        ] {
            let code = await errorCode { _ = try await verifier.verify(chain: [certificate], now: TestPKI.now) }
            #expect(code == expected)
        }
        #expect(await errorCode { _ = try await verifier.verify(chain: [], now: TestPKI.now) } == .emptyChain)
        #expect(
            await errorCode { _ = try await verifier.verify(derChain: [[1, 2, 3]], now: TestPKI.now) }
                == .invalidEncoding)
    }
}
