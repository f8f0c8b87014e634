import Foundation
import Yams

// MARK: - Loading

extension KubeConfiguration {
    /// Reads a kubeconfig file: the cluster, user and namespace of `context`, or of `current-context`.
    ///
    /// Supported: `certificate-authority(-data)`, `insecure-skip-tls-verify`, `token`, `tokenFile`,
    /// `client-certificate(-data)` and `client-key(-data)`. Relative file paths are resolved against the
    /// kubeconfig's folder. `exec` and `auth-provider` users (cloud plugins) are not supported.
    ///
    /// - Throws: `KubeClientError` with code `.configuration` naming the file and what is wrong.
    public static func fromKubeconfig(path: String, context: String? = nil) throws -> KubeConfiguration {
        let text = try Self.readText(path, what: "kubeconfig")
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try Self.fromKubeconfig(yaml: text, context: context, baseDirectory: folder, source: path)
    }

    /// Parses kubeconfig YAML; relative paths in it are resolved against `baseDirectory`.
    ///
    /// - Parameter source: Names the kubeconfig in error messages.
    public static func fromKubeconfig(
        yaml: String, context: String? = nil, baseDirectory: String, source: String = "kubeconfig"
    ) throws -> KubeConfiguration {
        let file: KubeconfigFile
        do {
            file = try YAMLDecoder().decode(KubeconfigFile.self, from: yaml)
        } catch {
            throw KubeClientError(code: .configuration, message: "\(source) is not a valid kubeconfig", cause: error)
        }
        let resolver = KubeconfigResolver(file: file, baseDirectory: baseDirectory, source: source)
        return try resolver.configuration(context: context)
    }
}

// MARK: - Resolution

/// Turns a decoded kubeconfig into a ``KubeConfiguration``.
struct KubeconfigResolver {
    let file: KubeconfigFile
    let baseDirectory: String
    let source: String

    func configuration(context requested: String?) throws -> KubeConfiguration {
        let contexts = self.file.contexts ?? []
        let contextName: String
        if let requested, !requested.isEmpty {
            contextName = requested
        } else if let current = self.file.currentContext, !current.isEmpty {
            contextName = current
        } else {
            throw self.error("has no current-context; pass a context (--context)")
        }
        guard let named = contexts.first(where: { $0.name == contextName }) else {
            let known = contexts.map(\.name).sorted().joined(separator: ", ")
            throw self.error("has no context \"\(contextName)\" (contexts: \(known.isEmpty ? "none" : known))")
        }
        guard let context = named.context, let clusterName = context.cluster, !clusterName.isEmpty else {
            throw self.error("context \"\(contextName)\" names no cluster")
        }
        guard let cluster = self.file.clusters?.first(where: { $0.name == clusterName })?.cluster else {
            throw self.error("context \"\(contextName)\" names cluster \"\(clusterName)\", which is not defined")
        }
        guard let serverText = cluster.server, !serverText.isEmpty else {
            throw self.error("cluster \"\(clusterName)\" has no server")
        }
        guard let server = URL(string: serverText), let scheme = server.scheme?.lowercased(),
            scheme == "https" || scheme == "http", server.host != nil
        else {
            throw self.error("cluster \"\(clusterName)\" has server \"\(serverText)\", which is not an http(s) URL")
        }
        let ca = try self.pem(
            data: cluster.certificateAuthorityData, file: cluster.certificateAuthority,
            what: "certificate-authority of cluster \"\(clusterName)\"")
        var auth = KubeConfiguration.Authentication.none
        if let userName = context.user, !userName.isEmpty {
            guard let user = self.file.users?.first(where: { $0.name == userName })?.user else {
                throw self.error("context \"\(contextName)\" names user \"\(userName)\", which is not defined")
            }
            auth = try self.authentication(user, name: userName)
        }
        let namespace = context.namespace.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        return KubeConfiguration(
            server: server, auth: auth, certificateAuthorityPEM: ca,
            insecureSkipTLSVerify: cluster.insecureSkipTLSVerify ?? false, namespace: namespace)
    }

    /// A client certificate wins over a token when both are given: the API server authenticates the
    /// certificate first too.
    func authentication(_ user: KubeconfigFile.User, name: String) throws -> KubeConfiguration.Authentication {
        if user.exec != nil || user.authProvider != nil {
            let kind = user.exec != nil ? "exec" : "auth-provider"
            throw self.error(
                "user \"\(name)\" uses an \(kind) credential plugin, which is not supported; "
                    + "give the user a token (e.g. from `kubectl create token <serviceaccount>`), a tokenFile, "
                    + "or a client certificate and key")
        }
        let certificate = try self.pem(
            data: user.clientCertificateData, file: user.clientCertificate,
            what: "client-certificate of user \"\(name)\"")
        let key = try self.pem(
            data: user.clientKeyData, file: user.clientKey, what: "client-key of user \"\(name)\"")
        switch (certificate, key) {
        case (let certificate?, let key?):
            return .clientCertificate(certificatePEM: certificate, keyPEM: key)
        case (.some, nil):
            throw self.error("user \"\(name)\" has a client certificate but no client-key")
        case (nil, .some):
            throw self.error("user \"\(name)\" has a client-key but no client certificate")
        case (nil, nil):
            break
        }
        if let token = user.token, !token.isEmpty {
            return .bearerToken(token)
        }
        if let tokenFile = user.tokenFile, !tokenFile.isEmpty {
            return .tokenFile(path: self.resolve(tokenFile))
        }
        if user.username != nil || user.password != nil {
            throw self.error(
                "user \"\(name)\" uses basic authentication, which Kubernetes no longer supports; use a token")
        }
        return .none
    }

    /// The PEM of an inline base64 `*-data` field, else of a file.
    func pem(data: String?, file: String?, what: String) throws -> String? {
        if let data, !data.isEmpty {
            guard let bytes = Data(base64Encoded: data, options: .ignoreUnknownCharacters),
                let text = String(data: bytes, encoding: .utf8)
            else {
                throw self.error("\(what): the -data field is not base64 of PEM text")
            }
            return text
        }
        if let file, !file.isEmpty {
            return try KubeConfiguration.readText(self.resolve(file), what: "\(what) in \(self.source)")
        }
        return nil
    }

    /// An absolute path as given, a relative one against the kubeconfig's folder.
    func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : KubeConfiguration.joinPath(self.baseDirectory, path)
    }

    func error(_ message: String) -> KubeClientError {
        KubeClientError(code: .configuration, message: "kubeconfig \(self.source) \(message)")
    }
}

// MARK: - File format

/// The parts of a kubeconfig (`clientcmd/api/v1.Config`) this client reads.
struct KubeconfigFile: Decodable {
    var clusters: [NamedCluster]?
    var users: [NamedUser]?
    var contexts: [NamedContext]?
    var currentContext: String?

    enum CodingKeys: String, CodingKey {
        case clusters, users, contexts
        case currentContext = "current-context"
    }

    struct NamedCluster: Decodable {
        var name: String
        var cluster: Cluster?
    }

    struct Cluster: Decodable {
        var server: String?
        var certificateAuthority: String?
        var certificateAuthorityData: String?
        var insecureSkipTLSVerify: Bool?

        enum CodingKeys: String, CodingKey {
            case server
            case certificateAuthority = "certificate-authority"
            case certificateAuthorityData = "certificate-authority-data"
            case insecureSkipTLSVerify = "insecure-skip-tls-verify"
        }
    }

    struct NamedUser: Decodable {
        var name: String
        var user: User?
    }

    struct User: Decodable {
        var token: String?
        var tokenFile: String?
        var clientCertificate: String?
        var clientCertificateData: String?
        var clientKey: String?
        var clientKeyData: String?
        var username: String?
        var password: String?
        var exec: Present?
        var authProvider: Present?

        enum CodingKeys: String, CodingKey {
            case token, tokenFile, username, password, exec
            case clientCertificate = "client-certificate"
            case clientCertificateData = "client-certificate-data"
            case clientKey = "client-key"
            case clientKeyData = "client-key-data"
            case authProvider = "auth-provider"
        }
    }

    struct NamedContext: Decodable {
        var name: String
        var context: Context?
    }

    struct Context: Decodable {
        var cluster: String?
        var user: String?
        var namespace: String?
    }

    /// Any YAML node: only its presence matters.
    struct Present: Decodable {
        init(from decoder: any Decoder) throws {}
    }
}
