import ProxyConfig

/// What an inbound port's mTLS mode makes of a connection's first bytes (pure).
enum InboundTLSAction: Equatable {
    /// Terminate mTLS, then detect HTTP/1.1, h2 or TCP inside.
    case terminate
    /// Plaintext handling as without mTLS (a ClientHello on a DISABLE port is opaque TCP to the app).
    case plaintext
    /// Close the connection, counted with `reason`.
    case refuse(reason: String)
}

enum InboundTLSPolicy {
    /// `startsWithTLS`: the first byte is a TLS handshake record (`0x16`). `hasCertificate`: the proxy has TLS
    /// material to terminate with.
    static func action(mode: InboundTLSMode, startsWithTLS: Bool, hasCertificate: Bool) -> InboundTLSAction {
        switch (mode, startsWithTLS) {
        case (.disable, _):
            return .plaintext
        case (.permissive, false):
            return .plaintext
        case (.strict, false):
            return .refuse(reason: "plaintext")
        case (.permissive, true), (.strict, true):
            return hasCertificate ? .terminate : .refuse(reason: "no_certificate")
        }
    }

    /// Whether a port must see the client's first bytes before serving (an inbound `tcp` port is otherwise
    /// proxied at once, for server-first protocols): any port that may terminate TLS.
    static func waitsForFirstBytes(_ mode: InboundTLSMode) -> Bool {
        mode != .disable
    }
}

/// A peer's verified identity, carried from the TLS handshake to every request of the connection.
struct PeerIdentity: Hashable, Sendable {
    /// The SPIFFE ID of the peer's certificate (the authorization principal).
    var spiffeID: String
}

/// Authorization of an opaque TCP connection: no method or path (rules that name them do not match it).
enum InboundTCPAuthorization {
    static func allows(_ inbound: InboundPort, peer: PeerIdentity?) -> Bool {
        if inbound.authorization.policies.isEmpty {
            return true
        }
        let request = AuthorizationRequest(principal: peer?.spiffeID, method: "", path: "", port: inbound.port)
        return inbound.authorization.evaluate(request).allowed
    }
}
