import Foundation
import Synchronization
import Testing

@testable import KubeClient

@Suite("KubeConfiguration")
struct KubeConfigurationTests {
    static let kubeconfig = """
        apiVersion: v1
        kind: Config
        current-context: dev
        clusters:
        - name: dev-cluster
          cluster:
            server: https://dev.example.com:6443
            certificate-authority-data: \(Data("DEV CA PEM\n".utf8).base64EncodedString())
        - name: prod-cluster
          cluster:
            server: https://[fd00::1]:443/proxy/
            certificate-authority: certs/ca.crt
        - name: kind-cluster
          cluster:
            server: https://127.0.0.1:35000
            insecure-skip-tls-verify: true
        users:
        - name: dev-user
          user:
            token: dev-token
        - name: prod-user
          user:
            client-certificate: certs/client.crt
            client-key: /abs/never-read.key
        - name: file-user
          user:
            tokenFile: secrets/token
        - name: data-user
          user:
            client-certificate-data: \(Data("CERT PEM".utf8).base64EncodedString())
            client-key-data: \(Data("KEY PEM".utf8).base64EncodedString())
        - name: gke-user
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1beta1
              command: gke-gcloud-auth-plugin
        - name: oidc-user
          user:
            auth-provider:
              name: oidc
        contexts:
        - name: dev
          context: {cluster: dev-cluster, user: dev-user, namespace: shop}
        - name: prod
          context: {cluster: prod-cluster, user: prod-user}
        - name: kind
          context: {cluster: kind-cluster, user: data-user}
        - name: files
          context: {cluster: kind-cluster, user: file-user}
        - name: gke
          context: {cluster: dev-cluster, user: gke-user}
        - name: oidc
          context: {cluster: dev-cluster, user: oidc-user}
        - name: orphan
          context: {cluster: nowhere, user: dev-user}
        """

    @Test("current-context picks cluster, user and namespace")
    func currentContext() throws {
        let configuration = try KubeConfiguration.fromKubeconfig(yaml: Self.kubeconfig, baseDirectory: "/unused")
        #expect(configuration.server.absoluteString == "https://dev.example.com:6443")
        #expect(configuration.auth == .bearerToken("dev-token"))
        #expect(configuration.certificateAuthorityPEM == "DEV CA PEM\n")
        #expect(configuration.namespace == "shop")
        #expect(!configuration.insecureSkipTLSVerify)
        #expect(!configuration.description.contains("dev-token"))
    }

    @Test("--context overrides current-context; inline data and insecure-skip-tls-verify")
    func contextOverride() throws {
        let configuration = try KubeConfiguration.fromKubeconfig(
            yaml: Self.kubeconfig, context: "kind", baseDirectory: "/unused")
        #expect(configuration.server.absoluteString == "https://127.0.0.1:35000")
        #expect(configuration.auth == .clientCertificate(certificatePEM: "CERT PEM", keyPEM: "KEY PEM"))
        #expect(configuration.insecureSkipTLSVerify)
        #expect(configuration.certificateAuthorityPEM == nil)
        #expect(configuration.namespace == "default")
    }

    @Test("file paths are relative to the kubeconfig's folder")
    func relativePaths() throws {
        let folder = try TemporaryFolder()
        // The kubeconfig sits in config/: certs/ca.crt is config/certs/ca.crt; the key path is absolute.
        try folder.write("keys/client.key", "PROD KEY")
        let yaml = Self.kubeconfig.replacingOccurrences(of: "/abs/never-read.key", with: folder.path("keys/client.key"))
        try folder.write("config/kubeconfig", yaml)
        try folder.write("config/certs/ca.crt", "PROD CA")
        try folder.write("config/certs/client.crt", "PROD CERT")

        let configuration = try KubeConfiguration.fromKubeconfig(
            path: folder.path("config/kubeconfig"), context: "prod")
        #expect(configuration.server.absoluteString == "https://[fd00::1]:443/proxy/")
        #expect(configuration.certificateAuthorityPEM == "PROD CA")
        #expect(configuration.auth == .clientCertificate(certificatePEM: "PROD CERT", keyPEM: "PROD KEY"))

        let files = try KubeConfiguration.fromKubeconfig(path: folder.path("config/kubeconfig"), context: "files")
        #expect(files.auth == .tokenFile(path: folder.path("config/secrets/token")))
    }

    @Test("a missing referenced file names it")
    func missingFile() throws {
        let error = try #require(throws: KubeClientError.self) {
            try KubeConfiguration.fromKubeconfig(yaml: Self.kubeconfig, context: "prod", baseDirectory: "/nonexistent")
        }
        #expect(error.code == .configuration)
        #expect(error.message.contains("/nonexistent/certs/ca.crt"))
    }

    @Test("exec and auth-provider users are refused with a clear error", arguments: ["gke", "oidc"])
    func credentialPlugins(context: String) throws {
        let error = try #require(throws: KubeClientError.self) {
            try KubeConfiguration.fromKubeconfig(yaml: Self.kubeconfig, context: context, baseDirectory: "/")
        }
        #expect(error.code == .configuration)
        #expect(error.message.contains("user \"\(context)-user\""))
        #expect(error.message.contains("not supported"))
        #expect(error.message.contains("token"))
    }

    @Test("a missing context lists the known ones")
    func missingContext() throws {
        let error = try #require(throws: KubeClientError.self) {
            try KubeConfiguration.fromKubeconfig(yaml: Self.kubeconfig, context: "staging", baseDirectory: "/")
        }
        #expect(error.code == .configuration)
        #expect(error.message.contains("no context \"staging\""))
        #expect(error.message.contains("dev, files, gke"))

        let orphan = try #require(throws: KubeClientError.self) {
            try KubeConfiguration.fromKubeconfig(yaml: Self.kubeconfig, context: "orphan", baseDirectory: "/")
        }
        #expect(orphan.message.contains("cluster \"nowhere\""))

        let noCurrent = Self.kubeconfig.replacingOccurrences(of: "current-context: dev\n", with: "")
        let none = try #require(throws: KubeClientError.self) {
            try KubeConfiguration.fromKubeconfig(yaml: noCurrent, baseDirectory: "/")
        }
        #expect(none.message.contains("no current-context"))
    }

    @Test("a token file is re-read after it changes, at most every refresh interval")
    func tokenFileReread() throws {
        let folder = try TemporaryFolder()
        try folder.write("token", "first\n")
        let clock = ManualInstant()
        let cache = TokenFileCache(path: folder.path("token"), refreshInterval: .seconds(10), now: clock.now)
        #expect(try cache.token() == "first")

        try folder.write("token", "second")
        clock.advance(.seconds(5))
        #expect(try cache.token() == "first")
        clock.advance(.seconds(6))
        #expect(try cache.token() == "second")

        // Mid-rotation the file may be missing: the last good token is kept.
        try FileManager.default.removeItem(atPath: folder.path("token"))
        clock.advance(.seconds(11))
        #expect(try cache.token() == "second")
        #expect(try BearerTokenSource.file(cache).authorization() == "Bearer second")
    }

    @Test("in-cluster reads the ServiceAccount files and the service environment")
    func inCluster() throws {
        let folder = try TemporaryFolder()
        let directory = "var/run/secrets/kubernetes.io/serviceaccount"
        try folder.write("\(directory)/token", "sa-token")
        try folder.write("\(directory)/ca.crt", "CLUSTER CA")
        try folder.write("\(directory)/namespace", "weft-system\n")
        let environment = ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]

        let configuration = try KubeConfiguration.inCluster(environment: environment, fileSystemRoot: folder.root)
        #expect(configuration.server.absoluteString == "https://10.96.0.1:443")
        #expect(configuration.auth == .tokenFile(path: folder.path("\(directory)/token")))
        #expect(configuration.certificateAuthorityPEM == "CLUSTER CA")
        #expect(configuration.namespace == "weft-system")

        let ipv6 = try KubeConfiguration.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443"],
            fileSystemRoot: folder.root)
        #expect(ipv6.server.absoluteString == "https://[fd00:10:96::1]:443")
        #expect(ipv6.server.host != nil)

        let outside = try #require(throws: KubeClientError.self) {
            try KubeConfiguration.inCluster(environment: [:], fileSystemRoot: folder.root)
        }
        #expect(outside.message.contains("KUBERNETES_SERVICE_HOST"))
    }

    @Test("load: explicit path, then KUBECONFIG, then ~/.kube/config, then in-cluster")
    func loadOrder() throws {
        let folder = try TemporaryFolder()
        try folder.write("explicit", Self.kubeconfig)
        try folder.write(
            "from-env", Self.kubeconfig.replacingOccurrences(of: "current-context: dev", with: "current-context: kind"))
        try folder.write("home/.kube/config", Self.kubeconfig.replacingOccurrences(of: "dev-token", with: "home-token"))
        try folder.write("var/run/secrets/kubernetes.io/serviceaccount/token", "sa-token")
        try folder.write("var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "CLUSTER CA")
        let inPod = ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]
        let env = inPod.merging(["KUBECONFIG": ":\(folder.path("from-env")):\(folder.path("explicit"))"]) { $1 }

        let explicit = try KubeConfiguration.load(
            kubeconfig: folder.path("explicit"), context: nil, environment: env, homeDirectory: folder.path("home"))
        #expect(explicit.auth == .bearerToken("dev-token"))
        let fromEnv = try KubeConfiguration.load(
            kubeconfig: nil, context: nil, environment: env, homeDirectory: folder.path("home"))
        #expect(fromEnv.server.absoluteString == "https://127.0.0.1:35000")
        let fromHome = try KubeConfiguration.load(
            kubeconfig: nil, context: "dev", environment: inPod, homeDirectory: folder.path("home"))
        #expect(fromHome.auth == .bearerToken("home-token"))
        let fromPod = try KubeConfiguration.load(
            kubeconfig: nil, context: nil, environment: inPod, homeDirectory: folder.path("nohome"),
            fileSystemRoot: folder.root)
        #expect(fromPod.namespace == "default")
        #expect(fromPod.certificateAuthorityPEM == "CLUSTER CA")

        let nothing = try #require(throws: KubeClientError.self) {
            try KubeConfiguration.load(
                kubeconfig: nil, context: nil, environment: [:], homeDirectory: folder.path("nohome"))
        }
        #expect(nothing.code == .configuration)
        #expect(nothing.message.contains("KUBECONFIG"))
        #expect(nothing.message.contains("KUBERNETES_SERVICE_HOST"))

        let missing = try #require(throws: KubeClientError.self) {
            try KubeConfiguration.load(kubeconfig: folder.path("absent"), context: nil, environment: [:])
        }
        #expect(missing.message.contains(folder.path("absent")))
    }
}

// MARK: - Helpers

/// A folder under the temporary directory, removed when the value is released.
private final class TemporaryFolder {
    let root: String

    init() throws {
        self.root = FileManager.default.temporaryDirectory.appendingPathComponent("weft-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: self.root, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: self.root)
    }

    func path(_ relative: String) -> String {
        KubeConfiguration.joinPath(self.root, relative)
    }

    func write(_ relative: String, _ text: String) throws {
        let url = URL(fileURLWithPath: self.path(relative))
        try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }
}

/// A clock reading that tests move by hand.
private final class ManualInstant: Sendable {
    private let instant = Mutex(ContinuousClock.now)

    var now: @Sendable () -> ContinuousClock.Instant {
        { self.instant.withLock { $0 } }
    }

    func advance(_ duration: Duration) {
        self.instant.withLock { $0 += duration }
    }
}
