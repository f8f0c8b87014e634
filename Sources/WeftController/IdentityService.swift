import Foundation
import GRPCCore
import Logging
import Metrics
import WeftIdentity
import WeftPush

/// `weft.identity.v1.Identity/Sign`: checks the caller's token with a ``WorkloadAuthenticator``, then issues an
/// X.509-SVID for `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>` of that token from the CSR, which
/// must request exactly that identity.
///
/// Errors: `unauthenticated` (no, unknown, expired or wrong-audience token), `permissionDenied` (a token that is
/// not a service account's, or a CSR for another identity), `invalidArgument` (an unreadable CSR, a key that is not
/// P-256), `unavailable` (the API server could not review the token, or the CA is not valid now).
public struct IdentityService: Weft_Identity_V1_Identity.SimpleServiceProtocol {
    let ca: MeshCA
    let authenticator: any WorkloadAuthenticator
    let logger: Logger
    private let issued = Counter(label: "weft_ca_issued_total")
    private let refused = Counter(label: "weft_ca_refused_total")

    public init(ca: MeshCA, authenticator: any WorkloadAuthenticator, logger: Logger) {
        self.ca = ca
        self.authenticator = authenticator
        self.logger = logger
    }

    public func sign(
        request: Weft_Identity_V1_SignRequest, context: ServerContext
    ) async throws -> Weft_Identity_V1_SignResponse {
        do {
            let response = try await self.sign(csrPEM: request.csrPem, token: request.token)
            self.issued.increment()
            return response
        } catch {
            self.refused.increment()
            self.logger.info(
                "certificate request refused",
                metadata: ["error": "\(error.message)", "grpc.peer": "\(context.remotePeer)"])
            throw error
        }
    }

    /// The RPC's work, without the transport.
    public func sign(csrPEM: String, token: String) async throws(RPCError) -> Weft_Identity_V1_SignResponse {
        let account: WorkloadAccount
        do {
            account = try await self.authenticator.authenticate(token: token)
        } catch {
            switch error.code {
            case .unauthenticated: throw RPCError(code: .unauthenticated, message: error.message)
            case .notAServiceAccount: throw RPCError(code: .permissionDenied, message: error.message)
            case .unavailable: throw RPCError(code: .unavailable, message: error.message)
            }
        }
        let identity: SpiffeID
        do {
            identity = try SpiffeID(
                trustDomain: self.ca.trustDomain, namespace: account.namespace,
                serviceAccount: account.serviceAccount)
        } catch {
            throw RPCError(code: .permissionDenied, message: "service account \(account) is not a SPIFFE ID: \(error)")
        }
        let certificate: IssuedCertificate
        do {
            certificate = try self.ca.issue(csrPEM: csrPEM, for: identity)
        } catch let error as IdentityError {
            throw Self.rpcError(error, identity: identity)
        } catch {
            throw RPCError(code: .internalError, message: "issuing failed: \(error)")
        }
        let bundle: String
        do {
            bundle = try self.ca.trustBundlePEM
        } catch {
            throw RPCError(code: .internalError, message: "the trust bundle does not encode: \(error)")
        }
        self.logger.info(
            "certificate issued",
            metadata: [
                "peer.spiffe_id": "\(identity)", "cert.not_after": "\(certificate.notAfter)",
                "cert.serial": "\(certificate.serialNumber)",
            ])
        return .with {
            $0.certificateChainPem = certificate.fullChainPEM
            $0.trustBundlePem = bundle
            $0.notAfter = Int64(certificate.notAfter.timeIntervalSince1970)
        }
    }

    static func rpcError(_ error: IdentityError, identity: SpiffeID) -> RPCError {
        switch error.code {
        case .csrIdentityMismatch:
            RPCError(code: .permissionDenied, message: "the token proves \(identity): \(error.message)")
        case .certificateAuthorityNotValid:
            RPCError(code: .unavailable, message: error.message)
        case .invalidEncoding, .csrSignatureInvalid, .csrKeyNotP256, .csrMalformed, .invalidArgument:
            RPCError(code: .invalidArgument, message: error.message)
        default:
            RPCError(code: .internalError, message: error.message)
        }
    }
}
