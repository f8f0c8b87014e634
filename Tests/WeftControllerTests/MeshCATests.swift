import Crypto
import Foundation
import GRPCCore
import KubeClient
import KubeModel
import Logging
import Synchronization
import Testing
import WeftController
import WeftIdentity
import WeftTesting

private let logger = Logger(label: "weft.test.ca")
private let domain = try! TrustDomain("cluster.local")

/// A fake API server and a client for it, shut down after `body`.
private func withAPI(_ body: (FakeAPIServer, KubeClient) async throws -> Void) async throws {
    try await FakeAPIServer.start().withClient(logger: logger, body)
}

/// Lets every create through only once `parties` callers have arrived at it: two CAs that both read "no Secret"
/// and then both create, whatever the scheduling.
private final class CreateBarrier: KubeAPI {
    let base: any KubeAPI
    private let parties: Int
    private let arrived = Mutex<(count: Int, waiters: [CheckedContinuation<Void, Never>])>((0, []))

    init(_ base: any KubeAPI, parties: Int) {
        self.base = base
        self.parties = parties
    }

    func create<R: KubeResource>(_ object: R) async throws -> R {
        await withCheckedContinuation { continuation in
            let release = self.arrived.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.count += 1
                state.waiters.append(continuation)
                guard state.count >= self.parties else { return [] }
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in release { waiter.resume() }
        }
        return try await self.base.create(object)
    }

    func get<R: KubeResource>(_ type: R.Type, namespace: String?, name: String) async throws -> R {
        try await self.base.get(type, namespace: namespace, name: name)
    }
    func list<R: KubeResource>(_ type: R.Type, namespace: String?, options: ListOptions) async throws
        -> meta.v1.List<R>
    { try await self.base.list(type, namespace: namespace, options: options) }
    func watch<R: KubeResource>(_ type: R.Type, namespace: String?, options: WatchOptions) async throws
        -> WatchEvents<R>
    { try await self.base.watch(type, namespace: namespace, options: options) }
    func update<R: KubeResource>(_ object: R) async throws -> R { try await self.base.update(object) }
    func updateStatus<R: KubeResource>(_ object: R) async throws -> R { try await self.base.updateStatus(object) }
    func patch<R: KubeResource>(
        _ type: R.Type, namespace: String?, name: String, patch: KubePatch, options: PatchOptions
    ) async throws -> R {
        try await self.base.patch(type, namespace: namespace, name: name, patch: patch, options: options)
    }
    func delete<R: KubeResource>(_ type: R.Type, namespace: String?, name: String) async throws {
        try await self.base.delete(type, namespace: namespace, name: name)
    }
    func ignoringCancellation(timeout: Duration) -> any KubeAPI { self }
}

@Suite("Mesh CA: the weft-ca Secret, tokens, and Sign")
struct MeshCATests {
    @Test func twoRacingReplicasCreateTheSecretOnceAndShareItsRoot() async throws {
        try await withAPI { server, client in
            let api = CreateBarrier(client, parties: 2)
            async let first = MeshCA.load(
                from: .secret(api), rootNamespace: "weft-system", trustDomain: domain, logger: logger)
            async let second = MeshCA.load(
                from: .secret(api), rootNamespace: "weft-system", trustDomain: domain, logger: logger)
            let (a, b) = try await (first, second)
            #expect(a.authority.root == b.authority.root)
            #expect(server.count(method: "POST", pathContains: "/secrets") == 2)
            #expect(server.list(core.v1.Secret.self, namespace: "weft-system").count == 1)

            // What the real API server accepts: type kubernetes.io/tls, tls.crt / tls.key / ca.crt, base64.
            let stored = try #require(server.get(core.v1.Secret.self, namespace: "weft-system", name: "weft-ca"))
            #expect(stored.type == "kubernetes.io/tls")
            #expect(Set((stored.data ?? [:]).keys) == ["tls.crt", "tls.key", "ca.crt"])
            let certificate = try #require(stored.data?["tls.crt"].flatMap { Data(base64Encoded: $0) })
            #expect(String(decoding: certificate, as: UTF8.self).hasPrefix("-----BEGIN CERTIFICATE-----"))

            // A restart reads it and writes nothing.
            server.resetRequests()
            let again = try await MeshCA.load(
                from: .secret(client), rootNamespace: "weft-system", trustDomain: domain, logger: logger)
            #expect(again.authority.root == a.authority.root)
            #expect(server.writeCount() == 0)
        }
    }

    @Test func aUserSuppliedRootIsUsedAsIs() async throws {
        try await withAPI { server, client in
            let supplied = try CertificateAuthority.generateRoot(
                trustDomain: domain, now: Date(), serialNumbers: .random)
            var secret = core.v1.Secret.new(namespace: "weft-system", name: "weft-ca")
            secret.type = "kubernetes.io/tls"
            secret.data = supplied.secretData.mapValues { $0.base64EncodedString() }
            try server.seed(secret)
            server.resetRequests()

            let ca = try await MeshCA.load(
                from: .secret(client), rootNamespace: "weft-system", trustDomain: domain, logger: logger)
            let expected = try CertificateAuthority(secret: supplied, trustDomain: domain, serialNumbers: .random)
            #expect(ca.authority.root == expected.root)
            #expect(server.writeCount() == 0)
            let issued = try ca.issueControllerCertificate().certificate
            let identity = try await SVIDVerifier(bundle: expected.trustBundle)
                .verify(chain: [issued.certificate] + issued.chain, now: Date())
            #expect(identity.description == "spiffe://cluster.local/ns/weft-system/sa/weft-controller")
        }
    }

    @Test func anUnusableSecretStopsTheControllerAndIsNotOverwritten() async throws {
        try await withAPI { server, client in
            var secret = core.v1.Secret.new(namespace: "weft-system", name: "weft-ca")
            secret.type = "kubernetes.io/tls"
            secret.data = ["tls.crt": Data("not a certificate".utf8).base64EncodedString()]
            try server.seed(secret)
            server.resetRequests()
            await #expect(throws: MeshCAError.self) {
                try await MeshCA.load(
                    from: .secret(client), rootNamespace: "weft-system", trustDomain: domain, logger: logger)
            }
            #expect(server.writeCount() == 0)
        }
    }

    @Test func theStateDirectoryKeepsTheCAAcrossRestarts() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("weft-ca-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try await MeshCA.load(
            from: .directory(directory), rootNamespace: "weft-system", trustDomain: domain, logger: logger)
        let second = try await MeshCA.load(
            from: .directory(directory), rootNamespace: "weft-system", trustDomain: domain, logger: logger)
        #expect(first.authority.root == second.authority.root)
        let key = try FileManager.default.attributesOfItem(atPath: directory + "/weft-ca/tls.key")
        #expect((key[.posixPermissions] as? Int) == 0o600)
    }

    // MARK: - TokenReview

    @Test func tokenReviewSendsWhatTheAPIServerAcceptsAndReadsTheAccount() async throws {
        try await withAPI { server, client in
            server.setTokenReview(token: "good", username: "system:serviceaccount:shop:web", audiences: ["weft"])
            let account = try await TokenReviewAuthenticator(api: client).authenticate(token: "good")
            #expect(account == WorkloadAccount(namespace: "shop", serviceAccount: "web"))

            let request = try #require(server.requests.last)
            #expect(request.method == "POST")
            #expect(request.path == "/apis/authentication.k8s.io/v1/tokenreviews")
            let body = try JSONValue.parse(Data(request.body.utf8))
            #expect(body["apiVersion"] == "authentication.k8s.io/v1")
            #expect(body["kind"] == "TokenReview")
            #expect(body["spec"]?["token"] == "good")
            #expect(body["spec"]?["audiences"] == ["weft"])
            #expect(body["status"] == nil)
        }
    }

    @Test(
        "refused tokens",
        arguments: [
            ("unknown", AuthenticationError.Code.unauthenticated),
            ("other-audience", .unauthenticated),
            ("a-user", .notAServiceAccount),
            ("", .unauthenticated),
        ])
    func refusedTokens(_ token: String, _ code: AuthenticationError.Code) async throws {
        try await withAPI { server, client in
            server.setTokenReview(
                token: "other-audience", username: "system:serviceaccount:shop:web",
                audiences: [FakeAPIServer.apiServerAudience])
            server.setTokenReview(token: "a-user", username: "jane@example.com", audiences: ["weft"])
            await #expect {
                try await TokenReviewAuthenticator(api: client).authenticate(token: token)
            } throws: { error in
                (error as? AuthenticationError)?.code == code
            }
        }
    }

    // MARK: - Bootstrap tokens

    @Test func bootstrapTokensParseAndAuthenticate() async throws {
        let tokens = try BootstrapTokenAuthenticator(
            parsing: """
                # embedded mode
                s3cret shop/web

                t0ken\tshop/catalog
                """)
        #expect(
            try await tokens.authenticate(token: "s3cret") == WorkloadAccount(namespace: "shop", serviceAccount: "web"))
        #expect(
            try await tokens.authenticate(token: "t0ken")
                == WorkloadAccount(namespace: "shop", serviceAccount: "catalog"))
        await #expect(throws: AuthenticationError.self) { try await tokens.authenticate(token: "guess") }
        #expect(throws: MeshCAError.self) { try BootstrapTokenAuthenticator(parsing: "lonely-token\n") }
        #expect(throws: MeshCAError.self) { try BootstrapTokenAuthenticator(parsing: "t shop\n") }
    }

    // MARK: - Sign

    @Test func signIssuesTheTokensIdentityAndRefusesAnyOther() async throws {
        let ca = try await MeshCA.load(from: .memory, rootNamespace: "weft-system", trustDomain: domain, logger: logger)
        let service = IdentityService(
            ca: ca,
            authenticator: BootstrapTokenAuthenticator(tokens: ["web": .init(namespace: "shop", serviceAccount: "web")]
            ),
            logger: logger)
        let key = P256.Signing.PrivateKey()
        let web = try SpiffeID("spiffe://cluster.local/ns/shop/sa/web")
        let response = try await service.sign(csrPEM: try CSRBuilder.make(identity: web, key: key), token: "web")
        let identity = try await SVIDVerifier(bundle: ca.authority.trustBundle)
            .verify(pemChain: response.certificateChainPem, now: Date())
        #expect(identity == web)
        #expect(response.trustBundlePem == (try ca.trustBundlePEM))
        // X.509 times have whole seconds: notAfter may round the issue time's fraction up.
        let lifetime = TimeInterval(response.notAfter) - Date().timeIntervalSince1970
        #expect(lifetime > 23 * 3600 && lifetime <= 24 * 3600 + 1)

        let other = try SpiffeID("spiffe://cluster.local/ns/shop/sa/payments")
        await #expect {
            try await service.sign(csrPEM: try CSRBuilder.make(identity: other, key: key), token: "web")
        } throws: { error in
            (error as? RPCError)?.code == .permissionDenied
        }
        await #expect {
            try await service.sign(csrPEM: try CSRBuilder.make(identity: web, key: key), token: "stolen")
        } throws: { error in
            (error as? RPCError)?.code == .unauthenticated
        }
        await #expect {
            try await service.sign(csrPEM: "not a CSR", token: "web")
        } throws: { error in
            (error as? RPCError)?.code == .invalidArgument
        }
    }
}
