/// Everything one proxy needs to serve its pod: who it is, what it accepts inbound, how it routes outbound,
/// and the clusters (with endpoints) it may send to. Knows nothing of Kubernetes.
///
/// The JSON encoding (`ProxyConfig.encoded()`) is deterministic: sorted keys, and every list sorted by the
/// compiler, so equal configs encode to equal bytes and `version` is a hash of that content.
public struct ProxyConfig: Codable, Hashable, Sendable {
    /// A hash of the content (every field but `version` itself): changes exactly when the config changes.
    public var version: String
    public var proxy: ProxyIdentity
    /// Inbound ports of the workload, sorted by port.
    public var inbound: [InboundPort]
    /// Outbound services reachable from this proxy, sorted by host then port.
    public var outbound: [OutboundService]
    /// Upstream clusters referenced by routes, sorted by name.
    public var clusters: [Cluster]
    /// What the outbound listener does with a captured connection whose original destination no outbound entry
    /// (ClusterIP:port) or endpoint (pod IP:port) names: nil (the default) passes it through as TCP.
    public var outboundUnknown: UnknownDestinationPolicy?

    public init(
        version: String = "", proxy: ProxyIdentity, inbound: [InboundPort] = [], outbound: [OutboundService] = [],
        clusters: [Cluster] = [], outboundUnknown: UnknownDestinationPolicy? = nil
    ) {
        self.version = version
        self.proxy = proxy
        self.inbound = inbound
        self.outbound = outbound
        self.clusters = clusters
        self.outboundUnknown = outboundUnknown
    }
}

/// A captured outbound connection to a destination the mesh does not know.
public enum UnknownDestinationPolicy: String, Codable, Hashable, Sendable, CaseIterable {
    /// Plain TCP to the original destination (the default).
    case passthrough
    /// Closed at once (`weft_proxy_tcp_rejected_total`).
    case refuse
}

/// The workload a proxy serves.
public struct ProxyIdentity: Codable, Hashable, Sendable {
    /// `namespace/pod`.
    public var id: String
    public var namespace: String
    public var name: String
    public var serviceAccount: String
    /// `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>`.
    public var spiffeID: String
    public var trustDomain: String
    /// Pod IPs, in the order the pod reports them.
    public var addresses: [String]
    /// Availability zone of the pod's node, when known: zone-aware balancing prefers it.
    public var zone: String?

    public init(
        id: String, namespace: String, name: String, serviceAccount: String, spiffeID: String,
        trustDomain: String, addresses: [String], zone: String? = nil
    ) {
        self.id = id
        self.namespace = namespace
        self.name = name
        self.serviceAccount = serviceAccount
        self.spiffeID = spiffeID
        self.trustDomain = trustDomain
        self.addresses = addresses
        self.zone = zone
    }
}

/// How a port's bytes are to be understood.
public enum AppProtocol: String, Codable, Hashable, Sendable, CaseIterable {
    case http1
    case http2
    case grpc
    case tcp
    /// Not declared: the proxy detects HTTP/1, HTTP/2 or TLS, and falls back to TCP.
    case detect
}

/// Inbound mTLS requirement for a port.
public enum InboundTLSMode: String, Codable, Hashable, Sendable, CaseIterable {
    /// Only mTLS from mesh peers.
    case strict
    /// mTLS or plaintext.
    case permissive
    /// Plaintext only; the proxy does not terminate TLS.
    case disable
}

/// A port of the workload that the proxy serves inbound, forwarding to the app on `appPort` on localhost.
public struct InboundPort: Codable, Hashable, Sendable {
    public var port: Int
    public var name: String?
    public var `protocol`: AppProtocol
    public var tls: InboundTLSMode
    /// Where the app listens (on 127.0.0.1).
    public var appPort: Int
    /// Who may call this port; decided before any byte reaches the app.
    public var authorization: AuthorizationTable

    public init(
        port: Int, name: String? = nil, protocol: AppProtocol, tls: InboundTLSMode, appPort: Int,
        authorization: AuthorizationTable = AuthorizationTable()
    ) {
        self.port = port
        self.name = name
        self.protocol = `protocol`
        self.tls = tls
        self.appPort = appPort
        self.authorization = authorization
    }
}
