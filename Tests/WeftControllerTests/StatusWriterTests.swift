import Foundation
import KubeClient
import KubeModel
import Logging
import Synchronization
import Testing
import WeftAPI
import WeftCompiler
import WeftController
import WeftManifests
import WeftTesting

/// The status writer against a fake API server, with a cache the test controls: what it writes while the
/// informer has not delivered its own writes yet.
@Suite("Status writer and a lagging cache")
struct StatusWriterTests {
    /// The cache as an informer holds it: the objects at the versions the test puts there.
    final class Cache: Sendable {
        private let objects = Mutex<[ResourceRef: StatusWriter.Current]>([:])

        func lookup(_ ref: ResourceRef) -> StatusWriter.Current? { self.objects.withLock { $0[ref] } }

        /// Every Weft resource as the server has it now.
        func catchUp(_ server: FakeAPIServer) {
            func put<R: WeftResource>(_ type: R.Type) {
                for object in server.list(R.self) {
                    self.put(object)
                }
            }
            put(weft.v1alpha1.VirtualService.self)
            put(weft.v1alpha1.DestinationPolicy.self)
            put(weft.v1alpha1.MeshTLSPolicy.self)
            put(weft.v1alpha1.AuthorizationPolicy.self)
        }

        func put<R: WeftResource>(_ object: R) {
            let current = StatusWriter.Current(
                apiVersion: R.apiVersion, metadata: object.metadata, status: object.status)
            self.objects.withLock { $0[ResourceRef(object)] = current }
        }
    }

    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("manifests/examples")

    func statusWrites(_ server: FakeAPIServer) -> [FakeAPIServer.Request] {
        server.requests.filter { $0.isWrite && $0.path.hasSuffix("/status") }
    }

    @Test("a compile before the informer delivers the writer's own writes writes nothing again")
    func ownWritesAreNotRepeated() async throws {
        let server = try await FakeAPIServer.start()
        try await server.withClient(logger: Logger(label: "test")) { server, client in
            let snapshot = try ManifestLoader().load(path: Self.examples.path).snapshot
            try server.seed(snapshot)
            let cache = Cache()
            cache.catchUp(server)
            let writer = StatusWriter(
                api: client, lookup: { cache.lookup($0) }, isLeader: { true }, identity: "test",
                logger: Logger(label: "test"))
            var session = CompileSession()
            let result = session.compile(snapshot)
            let state = ControllerState()
            #expect(result.statuses.count >= 8)

            await writer.apply(result, snapshot: snapshot, state: state)
            let first = self.statusWrites(server)
            #expect(first.count == result.statuses.count)

            // The cache still shows every resource without status: the writer knows what it wrote.
            server.resetRequests()
            await writer.apply(result, snapshot: snapshot, state: state)
            #expect(self.statusWrites(server).isEmpty, "\(self.statusWrites(server))")

            // The informer delivers the writes: still nothing to write.
            cache.catchUp(server)
            await writer.apply(result, snapshot: snapshot, state: state)
            #expect(self.statusWrites(server).isEmpty, "\(self.statusWrites(server))")

            // Someone else replaces a status: the cache shows a version the writer did not leave, and the
            // writer puts its conditions back.
            var catalog = try #require(
                server.get(weft.v1alpha1.VirtualService.self, namespace: "shop", name: "catalog"))
            catalog.status?.conditions = []
            let edited = try await client.updateStatus(catalog)
            cache.put(edited)
            server.resetRequests()
            await writer.apply(result, snapshot: snapshot, state: state)
            #expect(
                self.statusWrites(server).map(\.path) == [
                    "/apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/catalog/status"
                ])
            let restored = try #require(
                server.get(weft.v1alpha1.VirtualService.self, namespace: "shop", name: "catalog"))
            #expect(restored.status?.conditions?[type: "Accepted"]?.status == .true)
        }
    }
}
