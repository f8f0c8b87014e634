import Foundation

/// Where the Kubernetes API server is and how to authenticate to it.
///
/// Build one by hand, or with ``fromKubeconfig(path:context:)``, ``inCluster(environment:fileSystemRoot:)`` or
/// ``load(kubeconfig:context:environment:homeDirectory:fileSystemRoot:)`` (the order kubectl uses).
public struct KubeConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// How requests authenticate.
    public enum Authentication: Sendable, Hashable, CustomStringConvertible {
        /// No credentials (a local proxy such as `kubectl proxy`, or a test server).
        case none
        /// A fixed bearer token.
        case bearerToken(String)
        /// A bearer token read from a file and re-read when it changes (at most every 10 s): ServiceAccount
        /// tokens are rotated by the kubelet.
        case tokenFile(path: String)
        /// A TLS client certificate (chain) and its private key, both PEM.
        case clientCertificate(certificatePEM: String, keyPEM: String)

        /// Names the kind of credential without showing it.
        public var description: String {
            switch self {
            case .none: "none"
            case .bearerToken: "bearer token"
            case .tokenFile(let path): "token file \(path)"
            case .clientCertificate: "client certificate"
            }
        }
    }

    /// The API server, e.g. `https://10.96.0.1:443`; a path prefix (an authenticating proxy) is kept.
    public var server: URL
    /// How requests authenticate.
    public var auth: Authentication
    /// PEM of the certificate authorities to trust for the server; nil trusts the system roots.
    public var certificateAuthorityPEM: String?
    /// Skips verification of the server's certificate. For development clusters only.
    public var insecureSkipTLSVerify: Bool
    /// The namespace of the context (or of the ServiceAccount in a pod): used when a namespaced call names none.
    public var namespace: String

    /// A configuration from its parts.
    public init(
        server: URL, auth: Authentication = .none, certificateAuthorityPEM: String? = nil,
        insecureSkipTLSVerify: Bool = false, namespace: String = "default"
    ) {
        self.server = server
        self.auth = auth
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.namespace = namespace
    }

    /// The server, the kind of credential and the namespace; never a secret.
    public var description: String {
        var text = "\(self.server.absoluteString) (auth: \(self.auth), namespace: \(self.namespace)"
        if self.certificateAuthorityPEM != nil { text += ", custom CA" }
        if self.insecureSkipTLSVerify { text += ", insecure-skip-tls-verify" }
        return text + ")"
    }
}

// MARK: - In-cluster

extension KubeConfiguration {
    /// Where a pod finds its ServiceAccount credentials.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The configuration of a pod: `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT` and the ServiceAccount
    /// token (re-read as it rotates), CA and namespace under ``serviceAccountDirectory``.
    ///
    /// - Parameters:
    ///   - environment: The process environment (injected so that tests need no real pod).
    ///   - fileSystemRoot: Prefixed to ``serviceAccountDirectory``; `/` in a pod, a temporary folder in tests.
    /// - Throws: `KubeClientError` with code `.configuration` when not in a pod or a file is missing.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment, fileSystemRoot: String = "/"
    ) throws -> KubeConfiguration {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else {
            throw KubeClientError(
                code: .configuration,
                message: "not running in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
        }
        guard port.allSatisfy(\.isNumber) else {
            throw KubeClientError(code: .configuration, message: "KUBERNETES_SERVICE_PORT \"\(port)\" is not a port")
        }
        let bracketedHost = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        guard let server = URL(string: "https://\(bracketedHost):\(port)") else {
            throw KubeClientError(
                code: .configuration, message: "KUBERNETES_SERVICE_HOST \"\(host)\" does not make a server URL")
        }
        let directory = Self.joinPath(fileSystemRoot, Self.serviceAccountDirectory)
        let tokenPath = Self.joinPath(directory, "token")
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw KubeClientError(
                code: .configuration, message: "in-cluster: the ServiceAccount token \(tokenPath) is not readable")
        }
        let caPath = Self.joinPath(directory, "ca.crt")
        let ca = try Self.readText(caPath, what: "in-cluster CA certificate")
        let namespacePath = Self.joinPath(directory, "namespace")
        var namespace = "default"
        if FileManager.default.fileExists(atPath: namespacePath) {
            let text = try Self.readText(namespacePath, what: "in-cluster namespace")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty { namespace = text }
        }
        return KubeConfiguration(
            server: server, auth: .tokenFile(path: tokenPath), certificateAuthorityPEM: ca, namespace: namespace)
    }
}

// MARK: - Discovery

extension KubeConfiguration {
    /// Finds the configuration the way kubectl does: the `kubeconfig` path when given, else the first entry of
    /// `$KUBECONFIG`, else `~/.kube/config` when it exists, else the pod's ServiceAccount.
    ///
    /// - Parameters:
    ///   - kubeconfig: An explicit kubeconfig path (`--kubeconfig`).
    ///   - context: A context to use instead of `current-context` (`--context`); needs a kubeconfig.
    ///   - environment: The process environment (`KUBECONFIG`, `HOME`, `KUBERNETES_SERVICE_*`).
    ///   - homeDirectory: The home folder; by default `$HOME`, else the user's home directory.
    ///   - fileSystemRoot: Where the in-cluster ServiceAccount files are looked up (tests).
    /// - Throws: `KubeClientError` with code `.configuration` saying what was tried.
    public static func load(
        kubeconfig: String?, context: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        homeDirectory: String? = nil, fileSystemRoot: String = "/"
    ) throws -> KubeConfiguration {
        if let kubeconfig, !kubeconfig.isEmpty {
            return try Self.fromKubeconfig(path: kubeconfig, context: context)
        }
        if let list = environment["KUBECONFIG"],
            let first = list.split(separator: ":", omittingEmptySubsequences: true).first
        {
            return try Self.fromKubeconfig(path: String(first), context: context)
        }
        let home = homeDirectory ?? environment["HOME"] ?? FileManager.default.homeDirectoryForCurrentUser.path
        let defaultPath = Self.joinPath(home, ".kube/config")
        if FileManager.default.fileExists(atPath: defaultPath) {
            return try Self.fromKubeconfig(path: defaultPath, context: context)
        }
        if let context {
            throw KubeClientError(
                code: .configuration,
                message: "context \"\(context)\" was requested but no kubeconfig was found "
                    + "(no --kubeconfig, KUBECONFIG unset, no \(defaultPath))")
        }
        if environment["KUBERNETES_SERVICE_HOST"] != nil {
            return try Self.inCluster(environment: environment, fileSystemRoot: fileSystemRoot)
        }
        throw KubeClientError(
            code: .configuration,
            message: "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, create \(defaultPath), "
                + "or run in a pod with a ServiceAccount (KUBERNETES_SERVICE_HOST is not set)")
    }
}

// MARK: - Files

extension KubeConfiguration {
    /// `root` + `path` without doubled slashes.
    static func joinPath(_ root: String, _ path: String) -> String {
        if root.isEmpty { return path }
        let trimmedRoot = root.hasSuffix("/") ? String(root.dropLast()) : root
        let trimmedPath = path.hasPrefix("/") ? String(path.dropFirst()) : path
        return trimmedRoot + "/" + trimmedPath
    }

    /// Reads a UTF-8 file, or throws a `.configuration` error naming it.
    static func readText(_ path: String, what: String) throws -> String {
        let data = try Self.readData(path, what: what)
        guard let text = String(data: data, encoding: .utf8) else {
            throw KubeClientError(code: .configuration, message: "the \(what) \(path) is not UTF-8 text")
        }
        return text
    }

    /// Reads a file, or throws a `.configuration` error naming it.
    static func readData(_ path: String, what: String) throws -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw KubeClientError(
                code: .configuration, message: "cannot read the \(what) \(path)", cause: error)
        }
    }
}
