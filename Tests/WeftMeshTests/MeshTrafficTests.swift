import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Testing
import WeftController
import WeftHTTP
import WeftProxy

/// The whole chain in one process on 127.0.0.1: a folder of manifests, the controller (manifests source,
/// reconciler, push hub and server), a proxy fed only by the push stream, and two backends. Editing the
/// VirtualService in the folder moves the proxy's traffic from one backend to the other, and the resource's
/// `Programmed` condition follows the proxy's ACK.
@Suite("Mesh on loopback: manifests to proxy traffic", .serialized)
struct MeshTrafficTests {
    static let logger = Logger(label: "weft.test.mesh")

    /// A meshed client pod in `demo`; `web` and `web-v2` in `backend` (not meshed: plaintext endpoints) on the
    /// two backends' ports; a VirtualService for `web` whose destination is `target`.
    static func manifests(v1: Int, v2: Int, target: String) -> [String: String] {
        func pod(_ namespace: String, _ name: String, _ labels: String) -> String {
            """
            apiVersion: v1
            kind: Pod
            metadata: {name: \(name), namespace: \(namespace), labels: {\(labels)}}
            spec:
              serviceAccountName: default
              containers: [{name: app, image: app, ports: [{name: http, containerPort: 8080}]}]
            status:
              phase: Running
              podIP: 127.0.0.1
              podIPs: [{ip: 127.0.0.1}]
              conditions: [{type: Ready, status: "True"}]
            """
        }
        func service(_ name: String, port: Int) -> String {
            """
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: backend}
            spec:
              selector: {app: \(name)}
              ports: [{name: http, port: 80, targetPort: http, appProtocol: http}]
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: \(name)-1, namespace: backend, labels: {kubernetes.io/service-name: \(name)}}
            addressType: IPv4
            ports: [{name: http, port: \(port), protocol: TCP, appProtocol: http}]
            endpoints:
            - addresses: [127.0.0.1]
              conditions: {ready: true, serving: true, terminating: false}
              targetRef: {kind: Pod, namespace: backend, name: \(name)-pod}
            """
        }
        return [
            "00-namespaces.yaml": """
            apiVersion: v1
            kind: Namespace
            metadata: {name: demo, labels: {weft.dev/inject: enabled}}
            ---
            apiVersion: v1
            kind: Namespace
            metadata: {name: backend}
            """,
            "10-pods.yaml": [
                pod("demo", "client", "app: client"), pod("backend", "web-pod", "app: web"),
                pod("backend", "web-v2-pod", "app: web-v2"),
            ].joined(separator: "\n---\n"),
            "20-services.yaml": service("web", port: v1) + "\n---\n" + service("web-v2", port: v2),
            "30-routes.yaml": """
            apiVersion: weft.dev/v1alpha1
            kind: VirtualService
            metadata: {name: web, namespace: backend}
            spec:
              hosts: [web]
              http:
              - route: [{destination: {host: \(target)}}]
            """,
        ]
    }

    @Test("a route edited in the folder moves the proxy's traffic, and Programmed follows its ACK")
    func routeChangeShiftsTraffic() async throws {
        let v1 = EndpointServer(host: "127.0.0.1", port: 0, logger: Self.logger) { _ in .init(.ok, "v1") }
        let v2 = EndpointServer(host: "127.0.0.1", port: 0, logger: Self.logger) { _ in .init(.ok, "v2") }
        let backends = ServiceGroup(configuration: .init(services: [v1, v2], logger: Self.logger))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await backends.run() }
            let p1 = try #require(await eventually { v1.listeningPort })
            let p2 = try #require(await eventually { v2.listeningPort })
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("weft-mesh-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            for (name, text) in Self.manifests(v1: p1, v2: p2, target: "web") {
                try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
            }

            // The controller on the folder, with the push server.
            let state = ControllerState()
            let hub = PushHub(logger: Self.logger)
            let source = ManifestSource(path: folder.path, pollInterval: .milliseconds(50), logger: Self.logger)
            let reconciler = Reconciler(
                source: source, state: state, stages: [hub], logger: Self.logger, quiet: .milliseconds(10))
            hub.onAnswer { reconciler.signal() }
            let push = ConfigPushServer(host: "127.0.0.1", port: 0, hub: hub, logger: Self.logger)
            // The client pod's proxy: its config comes only from the push stream.
            let store = ProxyStateStore()
            let outbound = ProxyListener(
                direction: .outbound, port: 0, store: store, metrics: ProxyMetrics(), logger: Self.logger)
            let mesh = ServiceGroup(configuration: .init(services: [reconciler, push, outbound], logger: Self.logger))
            group.addTask { try await mesh.run() }
            let pushPort = try #require(await eventually { push.listeningPort })
            let client = PushClient(
                configuration: .init(host: "127.0.0.1", port: pushPort, proxyID: "demo/client"),
                installer: ConfigInstaller(store: store, logger: Self.logger), logger: Self.logger)
            let clientGroup = ServiceGroup(configuration: .init(services: [client], logger: Self.logger))
            group.addTask { try await clientGroup.run() }
            let proxyPort = try #require(await eventually { outbound.listeningPort })

            @Sendable func get() async -> String? {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(proxyPort)/")
                request.headers.add(name: "host", value: "web.backend")
                guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(10)),
                    let body = try? await response.body.collect(upTo: 1 << 20)
                else { return nil }
                return "\(response.status.code) \(String(buffer: body))"
            }
            @Sendable func programmed() -> String? {
                state.result.statuses.first { $0.key.name == "web" }?.value.condition("Programmed")?.reason
            }

            // Traffic reaches v1 through the pushed config, and the VirtualService is programmed.
            #expect(await eventually { await get() == "200 v1" } == true)
            #expect(await eventually { programmed() == "Programmed" } == true)
            let first = try #require(store.current?.config.version)

            // Edit the route in the folder: the next compile is pushed, and traffic moves to v2.
            try Self.manifests(v1: p1, v2: p2, target: "web-v2")["30-routes.yaml"]?
                .write(to: folder.appendingPathComponent("30-routes.yaml"), atomically: true, encoding: .utf8)
            #expect(await eventually { await get() == "200 v2" } == true)
            #expect(store.current?.config.version != first)
            #expect(await eventually { programmed() == "Programmed" } == true)
            #expect(await eventually { hub.proxies.first { $0.id == "demo/client" }?.status == .synced } == true)
            for _ in 0..<20 { #expect(await get() == "200 v2") }
            group.cancelAll()
        }
    }
}
