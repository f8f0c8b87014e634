import Foundation
import KubeClient
import KubeModel

/// The workload a token proves: a namespace and a service account.
public struct WorkloadAccount: Hashable, Sendable, CustomStringConvertible {
    public var namespace: String
    public var serviceAccount: String

    public init(namespace: String, serviceAccount: String) {
        self.namespace = namespace
        self.serviceAccount = serviceAccount
    }

    /// `system:serviceaccount:<namespace>:<name>` → the account; nil for any other username.
    public init?(username: String) {
        let parts = username.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "system", parts[1] == "serviceaccount", !parts[2].isEmpty,
            !parts[3].isEmpty
        else { return nil }
        self.init(namespace: String(parts[2]), serviceAccount: String(parts[3]))
    }

    public var description: String { "\(self.namespace)/\(self.serviceAccount)" }
}

/// Why a token was refused.
public struct AuthenticationError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The token is not valid (unknown, expired, wrong audience).
        case unauthenticated
        /// The token is valid but does not name a service account.
        case notAServiceAccount
        /// The authenticator could not decide (the API server is unreachable).
        case unavailable
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { self.message }
}

/// Turns a proxy's token into the workload it proves (linkerd's `Validator`): the TokenReview API in a cluster,
/// the bootstrap token file in manifests mode.
public protocol WorkloadAuthenticator: Sendable {
    func authenticate(token: String) async throws(AuthenticationError) -> WorkloadAccount
}

/// Checks tokens with the API server: `POST /apis/authentication.k8s.io/v1/tokenreviews` with `spec.token` and
/// `spec.audiences: ["weft"]`. Accepted only when `status.authenticated` is true, `status.audiences` contains
/// `weft` (an API server that does not support audiences answers none) and the username is
/// `system:serviceaccount:<namespace>:<name>`.
public struct TokenReviewAuthenticator: WorkloadAuthenticator {
    /// The audience proxies' projected tokens are issued for.
    public static let audience = "weft"

    private let api: any KubeAPI

    public init(api: any KubeAPI) {
        self.api = api
    }

    public func authenticate(token: String) async throws(AuthenticationError) -> WorkloadAccount {
        guard !token.isEmpty else { throw AuthenticationError(.unauthenticated, "the token is empty") }
        let request = authentication.v1.TokenReview(
            spec: .init(token: token, audiences: [Self.audience]))
        let review: authentication.v1.TokenReview
        do {
            review = try await self.api.create(request)
        } catch {
            throw AuthenticationError(.unavailable, "the TokenReview failed: \(error)")
        }
        guard let status = review.status, status.authenticated == true else {
            let reason = review.status?.error.map { ": \($0)" } ?? ""
            throw AuthenticationError(.unauthenticated, "the token is not valid\(reason)")
        }
        guard status.audiences?.contains(Self.audience) == true else {
            throw AuthenticationError(
                .unauthenticated,
                "the token is not for audience \(Self.audience) (its audiences: \(status.audiences ?? []))")
        }
        let username = status.user?.username ?? ""
        guard let account = WorkloadAccount(username: username) else {
            throw AuthenticationError(
                .notAServiceAccount, "the token belongs to \"\(username)\", not to a service account")
        }
        return account
    }
}

/// Tokens from a file (`--bootstrap-tokens FILE`, manifests mode): one `TOKEN NAMESPACE/SERVICEACCOUNT` per line;
/// blank lines and lines starting with `#` are skipped.
public struct BootstrapTokenAuthenticator: WorkloadAuthenticator {
    public let tokens: [String: WorkloadAccount]

    public init(tokens: [String: WorkloadAccount]) {
        self.tokens = tokens
    }

    /// Parses the file's text.
    /// - Throws: ``MeshCAError`` naming the line that is not `TOKEN NAMESPACE/SERVICEACCOUNT`.
    public init(parsing text: String) throws {
        var tokens: [String: WorkloadAccount] = [:]
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let account = fields.count == 2 ? fields[1].split(separator: "/", omittingEmptySubsequences: false) : []
            guard account.count == 2, !account[0].isEmpty, !account[1].isEmpty else {
                throw MeshCAError(
                    "bootstrap tokens, line \(index + 1): expected \"TOKEN NAMESPACE/SERVICEACCOUNT\"")
            }
            tokens[String(fields[0])] = WorkloadAccount(
                namespace: String(account[0]), serviceAccount: String(account[1]))
        }
        self.init(tokens: tokens)
    }

    public func authenticate(token: String) async throws(AuthenticationError) -> WorkloadAccount {
        guard let account = self.tokens[token] else {
            throw AuthenticationError(.unauthenticated, "the token is not a known bootstrap token")
        }
        return account
    }
}
