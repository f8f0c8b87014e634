import SwiftASN1
import X509

/// PEM and DER helpers shared by the CA, the trust bundle and the verifier.
enum PEM {
    /// Every `CERTIFICATE` block of `pem`, in order.
    /// - Throws: `invalidEncoding` when the text is not PEM, holds no certificate, or a certificate is unreadable.
    static func certificates(_ pem: String, what: String) throws -> [Certificate] {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw IdentityError(.invalidEncoding, "\(what) is not PEM: \(error)")
        }
        var certificates: [Certificate] = []
        for (index, document) in documents.enumerated() where document.discriminator == "CERTIFICATE" {
            do {
                certificates.append(try Certificate(derEncoded: document.derBytes))
            } catch {
                throw IdentityError(.invalidEncoding, "\(what): certificate \(index + 1) cannot be decoded: \(error)")
            }
        }
        guard !certificates.isEmpty else {
            throw IdentityError(.invalidEncoding, "\(what) holds no CERTIFICATE block")
        }
        return certificates
    }

    /// One certificate as a PEM block (with a trailing newline).
    static func encode(_ certificate: Certificate) throws -> String {
        try certificate.serializeAsPEM().pemString + "\n"
    }

    /// Certificates as concatenated PEM blocks.
    static func encode(_ certificates: [Certificate]) throws -> String {
        try certificates.map { try encode($0) }.joined()
    }
}

extension Certificate {
    /// Whether the certificate names itself as issuer and its signature verifies with its own key.
    var isSelfSigned: Bool {
        issuer == subject && publicKey.isValidSignature(signature, for: self)
    }

    /// Whether `issuer` names this certificate's issuer and its key verifies this certificate's signature.
    func isIssued(by issuer: Certificate) -> Bool {
        self.issuer == issuer.subject && issuer.publicKey.isValidSignature(signature, for: self)
    }

    /// Whether BasicConstraints marks the certificate as a CA.
    var isCertificateAuthority: Bool {
        guard let constraints = try? extensions.basicConstraints else { return false }
        if case .isCertificateAuthority = constraints { return true }
        return false
    }
}
