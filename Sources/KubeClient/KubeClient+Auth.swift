import Foundation
import Synchronization

/// A bearer token kept in a file (a projected ServiceAccount token) and re-read as the kubelet rotates it.
///
/// The file is read again once `refreshInterval` has passed since the last read; a changed token is used from
/// then on. The content is compared rather than the modification time: the kubelet swaps a `..data` symlink,
/// which leaves the `token` link itself untouched. When a re-read fails (the file is briefly missing during
/// the swap), the last good token is kept.
final class TokenFileCache: Sendable {
    struct State {
        var token: String?
        var readAt: ContinuousClock.Instant?
    }

    let path: String
    let refreshInterval: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let state = Mutex(State())

    init(
        path: String, refreshInterval: Duration = .seconds(10),
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.path = path
        self.refreshInterval = refreshInterval
        self.now = now
    }

    /// The current token, re-read from the file when the last read is older than `refreshInterval`.
    func token() throws -> String {
        let now = self.now()
        let cached: String? = self.state.withLock { state in
            guard let token = state.token, let readAt = state.readAt, readAt.duration(to: now) < self.refreshInterval
            else { return nil }
            return token
        }
        if let cached { return cached }
        do {
            let token = try Self.read(self.path)
            self.state.withLock { state in
                state.token = token
                state.readAt = now
            }
            return token
        } catch {
            let previous: String? = self.state.withLock { state in
                // Keep serving the last good token, and try the file again after the next interval.
                state.readAt = state.token == nil ? nil : now
                return state.token
            }
            if let previous { return previous }
            throw error
        }
    }

    static func read(_ path: String) throws -> String {
        let token = try KubeConfiguration.readText(path, what: "token file")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else {
            throw KubeClientError(code: .configuration, message: "the token file \(path) is empty")
        }
        return token
    }
}

/// Produces the `Authorization` header of each request.
enum BearerTokenSource: Sendable {
    case none
    case fixed(String)
    case file(TokenFileCache)

    init(_ auth: KubeConfiguration.Authentication) {
        switch auth {
        case .none, .clientCertificate: self = .none
        case .bearerToken(let token): self = .fixed(token)
        case .tokenFile(let path): self = .file(TokenFileCache(path: path))
        }
    }

    /// `Bearer <token>`, or nil without a token.
    func authorization() throws -> String? {
        switch self {
        case .none: nil
        case .fixed(let token): "Bearer \(token)"
        case .file(let cache): "Bearer \(try cache.token())"
        }
    }
}
