import Foundation
import ServiceLifecycle
import Testing
import WeftProxy

/// The trust bundle travels with every config on the push stream: a proxy takes a new one with the next config
/// (say a second root, trusted side by side while the mesh moves to it), and refuses a config whose bundle does
/// not load, keeping the old bundle and config.
@Suite("Trust bundle on the push stream", .serialized)
struct TrustBundlePushTests {
    @Test func aNewBundleComesWithTheNextConfigAndABadOneIsRefused() async throws {
        let controller = try await Controller.make()
        let other = try await TestPKI.make("next-root")
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
                            #expect(await waitUntil { controller.hub.syncedCount == 2 })
                            let root = try controller.ca.trustBundlePEM
                            #expect(clientCertificates.current()?.trustRootsPEM == root)

                            // Two roots from now on; the next config (a new upstream port) carries them.
                            let both = root + other.caPEM
                            controller.hub.trustBundle(both)
                            let version = client.store.current?.config.version
                            let acks = clientPush.statistics.acks
                            await controller.compile(
                                catalogInbound: catalog.inboundPort, app: upstreams[0].port, revision: 1)
                            // The ACK is counted once the config and its bundle are both in (the bundle goes in
                            // right after the config, so the version alone can be seen a moment earlier).
                            #expect(await waitUntil { clientPush.statistics.acks > acks })
                            #expect(client.store.current?.config.version != version)
                            #expect(clientCertificates.current()?.trustRootsPEM == both)
                            // The catalog's config did not change: it keeps the bundle it has.
                            #expect(catalogCertificates.current()?.trustRootsPEM == root)
                            // mTLS still works: the proxies' own SVIDs chain to the first root.
                            #expect(try await client.get("/", host: "catalog").status == 200)

                            // A bundle that does not load: the config is refused, bundle and config stay.
                            controller.hub.trustBundle(
                                "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
                            let serving = client.store.current?.config.version
                            await controller.compile(
                                catalogInbound: catalog.inboundPort, app: upstreams[0].port, revision: 2)
                            #expect(await waitUntil { clientPush.statistics.nacks == 1 })
                            #expect(client.store.current?.config.version == serving)
                            #expect(clientCertificates.current()?.trustRootsPEM == both)
                            #expect(try await client.get("/", host: "catalog").status == 200)
                            await group.triggerGracefulShutdown()
                        }
                    }
                }
            }
        }
    }
}
