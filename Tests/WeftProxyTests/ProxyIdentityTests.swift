import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ProxyConfig
import ServiceLifecycle
import Testing
import WeftCompiler
import WeftController
import WeftIdentity
import WeftProxy
import WeftPush
import WeftTesting

let logger = Logger(label: "weft.test.identity")
let domain = try! TrustDomain("cluster.local")
private let catalogID = "spiffe://cluster.local/ns/shop/sa/catalog"
private let clientID = "spiffe://cluster.local/ns/shop/sa/client"
let controllerID = try! SpiffeID("spiffe://cluster.local/ns/weft-system/sa/weft-controller")

/// The controller on loopback as weft-controller runs it in manifests mode: a CA in memory, bootstrap tokens, the
/// push hub, and port 15012's gRPC server with TLS, ConfigPush and Identity/Sign.
struct Controller: Sendable {
    let ca: MeshCA
    let hub: PushHub
    let server: ConfigPushServer
    let tokens: String

    /// A controller; with `ca`, one that finds the CA of an earlier one (as a restarted controller reads the CA
    /// Secret).
    static func make(ca existing: MeshCA? = nil) async throws -> Controller {
        let ca: MeshCA
        if let existing {
            ca = existing
        } else {
            ca = try await MeshCA.load(from: .memory, rootNamespace: "weft-system", trustDomain: domain, logger: logger)
        }
        let hub = PushHub(logger: logger)
        let tokens = FileManager.default.temporaryDirectory.appendingPathComponent("weft-tokens-\(UUID())").path
        try FileManager.default.createDirectory(atPath: tokens, withIntermediateDirectories: true)
        try "catalog-token\n".write(toFile: tokens + "/catalog", atomically: true, encoding: .utf8)
        try "client-token\n".write(toFile: tokens + "/client", atomically: true, encoding: .utf8)
        try "reviews-token\n".write(toFile: tokens + "/reviews", atomically: true, encoding: .utf8)
        let authenticator = try BootstrapTokenAuthenticator(
            parsing: "catalog-token shop/catalog\nclient-token shop/client\nreviews-token shop/reviews\n")
        let server = ConfigPushServer(
            host: "127.0.0.1", port: 0, hub: hub, tls: try PushServerTLS(ca: ca),
            identity: IdentityService(ca: ca, authenticator: authenticator, logger: logger), logger: logger)
        hub.trustBundle(try ca.trustBundlePEM)
        return Controller(ca: ca, hub: hub, server: server, tokens: tokens)
    }

    /// Compiles the two proxies' configs: the client's outbound `catalog` goes over mTLS to the catalog proxy's
    /// STRICT inbound, which forwards to `app`.
    /// `revision` > 0 adds the alias `catalog-<revision>` to the client's outbound entry: a new client config that
    /// routes the same.
    func compile(catalogInbound: Int, app: Int, revision: Int = 0) async {
        func identity(_ name: String) -> ProxyIdentity {
            ProxyIdentity(
                id: "shop/\(name)", namespace: "shop", name: name, serviceAccount: name,
                spiffeID: "spiffe://cluster.local/ns/shop/sa/\(name)", trustDomain: "cluster.local",
                addresses: ["127.0.0.1"])
        }
        var cluster = TestConfig.cluster("catalog", ports: [])
        cluster.endpoints = [Endpoint(address: "127.0.0.1", port: catalogInbound, identity: catalogID)]
        var service = TestConfig.service("catalog", routes: [TestConfig.forward(to: "catalog")])
        if revision > 0 { service.aliases.append("catalog-\(revision)") }
        let client = ProxyConfig(proxy: identity("client"), outbound: [service], clusters: [cluster])
        let catalog = ProxyConfig(
            proxy: identity("catalog"),
            inbound: [InboundPort(port: 8080, protocol: .http1, tls: .strict, appPort: app)])
        var result = CompileResult(
            proxies: [
                "shop/client": (try? client.versioned()) ?? client,
                "shop/catalog": (try? catalog.versioned()) ?? catalog,
            ])
        await self.hub.process(&result, snapshot: WeftSnapshot())
    }

    var port: Int? { self.server.listeningPort }

    func run<T: Sendable>(_ body: @Sendable (Int) async throws -> T) async throws -> T {
        let group = ServiceGroup(configuration: .init(services: [self.server], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            let port = try #require(await waitFor { self.server.listeningPort })
            let result = try await body(port)
            await group.triggerGracefulShutdown()
            return result
        }
    }
}

/// A proxy's identity and push clients against the controller on `port`.
func clients(
    _ name: String, port: Int, controller: Controller, certificates: InMemoryCertificateSource, store: ProxyStateStore,
    clock: any Clock<Duration> = ContinuousClock()
) throws -> (IdentityClient, PushClient) {
    let identity = IdentityClient(
        configuration: .init(
            host: "127.0.0.1", port: port, identity: try SpiffeID("spiffe://cluster.local/ns/shop/sa/\(name)"),
            controllerIdentity: controllerID, tokenPath: controller.tokens + "/" + name,
            controllerCAPEM: try controller.ca.trustBundlePEM, initialBackoff: .milliseconds(20),
            maximumBackoff: .milliseconds(200)),
        certificates: certificates, logger: logger, clock: clock, jitter: { 0.5 })
    let push = PushClient(
        configuration: .init(
            host: "127.0.0.1", port: port, proxyID: "shop/\(name)", initialBackoff: .milliseconds(20),
            maximumBackoff: .milliseconds(200),
            tls: .init(certificates: certificates, controllerIdentity: controllerID)),
        installer: ConfigInstaller(store: store, logger: logger), logger: logger, jitter: { 0.5 })
    return (identity, push)
}

@Suite("Mesh identities: Sign, the mTLS push stream and proxy-to-proxy mTLS with controller-issued SVIDs", .serialized)
struct ProxyIdentityTests {
    @Test func twoProxiesGetSVIDsStreamOverMutualTLSAndTalkMutualTLS() async throws {
        let controller = try await Controller.make()
        try await withUpstreams(["app"]) { upstreams in
            let catalogCertificates = InMemoryCertificateSource()
            let clientCertificates = InMemoryCertificateSource()
            try await ProxyHarness.withProxy(config: nil, meshTLS: MeshTLS(source: catalogCertificates)) { catalog in
                try await ProxyHarness.withProxy(config: nil, meshTLS: MeshTLS(source: clientCertificates)) { client in
                    await controller.compile(catalogInbound: catalog.inboundPort, app: upstreams[0].port)
                    try await controller.run { port in
                        let (catalogIdentity, catalogPush) = try clients(
                            "catalog", port: port, controller: controller, certificates: catalogCertificates,
                            store: catalog.store)
                        let (clientIdentity, clientPush) = try clients(
                            "client", port: port, controller: controller, certificates: clientCertificates,
                            store: client.store)
                        let group = ServiceGroup(
                            configuration: .init(
                                services: [catalogIdentity, catalogPush, clientIdentity, clientPush], logger: logger))
                        try await withThrowingTaskGroup(of: Void.self) { tasks in
                            tasks.addTask { try await group.run() }
                            // Both proxies hold controller-issued SVIDs and run the pushed configs.
                            #expect(await waitUntil { client.store.current?.config.proxy.id == "shop/client" })
                            #expect(await waitUntil { catalog.store.current?.config.proxy.id == "shop/catalog" })
                            #expect(await waitUntil { controller.hub.proxies.allSatisfy { $0.status == .synced } })
                            #expect(controller.hub.proxies.map(\.id) == ["shop/catalog", "shop/client"])
                            let bundle = try TrustBundle(
                                trustDomain: domain, rootsPEM: try controller.ca.trustBundlePEM)
                            for (source, expected) in [
                                (catalogCertificates, catalogID), (clientCertificates, clientID),
                            ] {
                                let material = try #require(source.current())
                                let identity = try await SVIDVerifier(bundle: bundle)
                                    .verify(pemChain: material.certificateChainPEM, now: Date())
                                #expect(identity.description == expected)
                            }
                            // The client proxy's outbound originates mTLS to the catalog's STRICT inbound.
                            for _ in 0..<4 {
                                let response = try await client.get("/", host: "catalog")
                                #expect(response.status == 200)
                                #expect(response.server == "app")
                            }
                            #expect(upstreams[0].requestsReceived == 4)
                            await group.triggerGracefulShutdown()
                        }
                    }
                }
            }
        }
    }

    @Test func aPushStreamMustCarryTheSVIDOfItsProxy() async throws {
        let controller = try await Controller.make()
        await controller.compile(catalogInbound: 1, app: 2)
        try await controller.run { port in
            // The client's SVID, through Sign.
            let certificates = InMemoryCertificateSource()
            let (identity, _) = try clients(
                "client", port: port, controller: controller, certificates: certificates, store: ProxyStateStore())
            try await identity.renew()
            let material = try #require(certificates.current())

            func hello(_ proxyID: String, certificate: TLSMaterial?) async throws -> RPCError.Code? {
                let transport = try HTTP2ClientTransport.Posix(
                    target: .ipv4(address: "127.0.0.1", port: port),
                    transportSecurity: ControllerTLS.security(
                        trustRootsPEM: material.trustRootsPEM, controllerIdentity: controllerID,
                        certificate: certificate))
                do {
                    try await withGRPCClient(transport: transport) { client in
                        let push = Weft_Push_V1_ConfigPush.Client(wrapping: client)
                        try await push.stream(
                            requestProducer: { writer in
                                try await writer.write(.with { $0.hello = .with { $0.proxyID = proxyID } })
                            },
                            onResponse: { response in
                                for try await message in response.messages {
                                    guard case .config? = message.kind else { continue }
                                    return
                                }
                            })
                    }
                    return nil
                } catch let error as RPCError {
                    return error.code
                }
            }
            // Its own proxy: a config arrives.
            #expect(try await hello("shop/client", certificate: material) == nil)
            // Another workload's proxy, or no certificate at all: refused.
            #expect(try await hello("shop/catalog", certificate: material) == .permissionDenied)
            #expect(try await hello("other/client", certificate: material) == .permissionDenied)
            #expect(try await hello("shop/client", certificate: nil) == .permissionDenied)
        }
    }

    /// Rotation on an injected clock: the identity clients sleep until half the lifetime on a `TestClock`; moving it
    /// renews both SVIDs while a bounded request loop keeps succeeding.
    @Test func rotationRenewsSVIDsWhileRequestsKeepSucceeding() async throws {
        let controller = try await Controller.make()
        let clock = TestClock()
        try await withUpstreams(["app"]) { upstreams in
            let catalogCertificates = InMemoryCertificateSource()
            let clientCertificates = InMemoryCertificateSource()
            try await ProxyHarness.withProxy(config: nil, meshTLS: MeshTLS(source: catalogCertificates)) { catalog in
                try await ProxyHarness.withProxy(config: nil, meshTLS: MeshTLS(source: clientCertificates)) { client in
                    await controller.compile(catalogInbound: catalog.inboundPort, app: upstreams[0].port)
                    try await controller.run { port in
                        let (catalogIdentity, catalogPush) = try clients(
                            "catalog", port: port, controller: controller, certificates: catalogCertificates,
                            store: catalog.store, clock: clock)
                        let (clientIdentity, clientPush) = try clients(
                            "client", port: port, controller: controller, certificates: clientCertificates,
                            store: client.store, clock: clock)
                        let group = ServiceGroup(
                            configuration: .init(
                                services: [catalogIdentity, catalogPush, clientIdentity, clientPush], logger: logger))
                        try await withThrowingTaskGroup(of: Void.self) { tasks in
                            tasks.addTask { try await group.run() }
                            #expect(await waitUntil { client.store.current != nil && catalog.store.current != nil })
                            // Both identity clients wait for their renewal time (12 h from now).
                            #expect(await clock.waitForSleepers(2))
                            let first = [catalogCertificates.current(), clientCertificates.current()]
                            #expect(first.map { $0?.version } == [1, 1])
                            var failures = 0
                            for index in 0..<40 {
                                if index == 20 {
                                    clock.advance(by: .seconds(13 * 3600))
                                    #expect(
                                        await waitUntil {
                                            catalogCertificates.current()?.version == 2
                                                && clientCertificates.current()?.version == 2
                                        })
                                }
                                let response = try await client.get("/", host: "catalog")
                                if response.status != 200 { failures += 1 }
                            }
                            #expect(failures == 0)
                            #expect(upstreams[0].requestsReceived == 40)
                            let renewed = [catalogCertificates.current(), clientCertificates.current()]
                            for (old, new) in zip(first, renewed) {
                                #expect(old?.certificateChainPEM != new?.certificateChainPEM)
                                #expect(old?.privateKeyPEM != new?.privateKeyPEM)
                            }
                            await group.triggerGracefulShutdown()
                        }
                    }
                }
            }
        }
    }

    @Test func opensslSeesTLS13AndTheControllersSpiffeID() async throws {
        let controller = try await Controller.make()
        let bundle = FileManager.default.temporaryDirectory.appendingPathComponent("weft-bundle-\(UUID()).pem").path
        try controller.ca.trustBundlePEM.write(toFile: bundle, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        try await controller.run { port in
            let session = try await runProcess([
                "sh", "-c",
                "openssl s_client -connect 127.0.0.1:\(port) -CAfile \(bundle) -alpn h2 </dev/null 2>&1",
            ])
            #expect(session.stdout.contains("TLSv1.3"), "\(session.stdout)")
            #expect(session.stdout.contains("Verify return code: 0 (ok)"), "\(session.stdout)")
            #expect(session.stdout.contains("ALPN protocol: h2"), "\(session.stdout)")
            let certificate = try await runProcess([
                "sh", "-c",
                "openssl s_client -connect 127.0.0.1:\(port) -alpn h2 </dev/null 2>/dev/null "
                    + "| openssl x509 -noout -ext subjectAltName",
            ])
            #expect(certificate.stdout.contains("URI:\(controllerID)"), "\(certificate)")
        }
    }
}

/// Polls `value` every 20 ms for up to 60 s (a cap for a loaded machine); nil when it never answers.
func waitFor<T>(_ value: () async -> T?) async -> T? {
    for _ in 0..<3000 {
        if let found = await value() { return found }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return nil
}

/// Polls `condition` every 20 ms for up to 60 s.
func waitUntil(_ condition: () async -> Bool) async -> Bool {
    await waitFor { await condition() ? true : nil } ?? false
}
