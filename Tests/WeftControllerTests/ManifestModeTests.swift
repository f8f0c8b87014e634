import Foundation
import KubeModel
import Logging
import Testing
import WeftController

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The embedded default: the controller on a folder of manifests, serving conditions at /status.
@Suite("Controller on a folder of manifests")
struct ManifestModeTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("manifests/examples")

    /// Copies the shop into a temporary folder.
    func shopFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "weft-manifests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: Self.examples.path)
        where name.hasSuffix(".yaml") {
            try FileManager.default.copyItem(
                at: Self.examples.appendingPathComponent(name),
                to: folder.appendingPathComponent(name))
        }
        return folder
    }

    func get(_ port: Int, _ path: String) async throws -> (Int, Data) {
        let url = try #require(URL(string: "http://127.0.0.1:\(port)\(path)"))
        let (data, response) = try await URLSession.shared.data(from: url)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    func status(_ port: Int) async throws -> [JSONValue] {
        let (code, data) = try await self.get(port, "/status")
        #expect(code == 200)
        return try JSONValue.parse(data)["items"]?.arrayValue ?? []
    }

    func condition(_ items: [JSONValue], _ resource: String, _ type: String) -> JSONValue? {
        let item = items.first { item in
            let metadata = item["metadata"]
            return
                "\(metadata?["namespace"]?.stringValue ?? "")/\(item["kind"]?.stringValue ?? "")/\(metadata?["name"]?.stringValue ?? "")"
                == resource
        }
        return item?["status"]?["conditions"]?.arrayValue?.first { $0["type"]?.stringValue == type }
    }

    /// Polls until `check` holds, for at most `seconds`.
    func eventually(seconds: Double = 60, _ check: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await check() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test("serves conditions, follows edits of the folder, and keeps transition times")
    func followsEdits() async throws {
        let folder = try self.shopFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let logger = Logger(label: "test")
        let state = ControllerState()
        let source = ManifestSource(path: folder.path, pollInterval: .milliseconds(50), logger: logger)
        let reconciler = Reconciler(source: source, state: state, logger: logger, quiet: .milliseconds(10))
        let http = ControllerHTTPServer(
            host: "127.0.0.1", port: 0, state: state,
            ready: { await source.hasSynced && state.hasCompiled }, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group throws in
            group.addTask { try await reconciler.run() }
            group.addTask { try await http.run() }
            defer { group.cancelAll() }

            #expect(try await self.eventually { http.listeningPort != nil })
            let port = try #require(http.listeningPort)
            #expect(try await self.eventually { try await self.status(port).count == 8 })
            #expect(try await self.get(port, "/readyz").0 == 200)
            #expect(try await self.get(port, "/healthz").0 == 200)
            #expect(try await self.get(port, "/nope").0 == 404)

            var items = try await self.status(port)
            let accepted = try #require(self.condition(items, "shop/VirtualService/catalog", "Accepted"))
            #expect(accepted["status"]?.stringValue == "True")
            #expect(
                self.condition(items, "shop/VirtualService/catalog", "ResolvedRefs")?["status"]?.stringValue == "True")
            let acceptedSince = accepted["lastTransitionTime"]?.stringValue
            #expect(acceptedSince?.isEmpty == false)
            // Generation 1 when first read, as the API server gives a new object.
            #expect(accepted["observedGeneration"]?.intValue == 1)

            // Break a reference: the subset v2 is no longer defined.
            let routing = folder.appendingPathComponent("40-routing.yaml")
            let original = try String(contentsOf: routing, encoding: .utf8)
            try await Task.sleep(for: .seconds(1.1))  // a different lastTransitionTime second
            try original.replacingOccurrences(of: "subset: v2", with: "subset: v3")
                .write(to: routing, atomically: true, encoding: .utf8)
            #expect(
                try await self.eventually {
                    self.condition(try await self.status(port), "shop/VirtualService/catalog", "ResolvedRefs")?[
                        "reason"]?.stringValue == "SubsetNotFound"
                })
            items = try await self.status(port)
            let broken = try #require(self.condition(items, "shop/VirtualService/catalog", "ResolvedRefs"))
            #expect(broken["status"]?.stringValue == "False")
            #expect(broken["message"]?.stringValue?.contains("subset \"v3\"") == true)
            #expect(broken["lastTransitionTime"]?.stringValue != acceptedSince)
            // The spec changed: generation 2. The other VirtualServices of the file did not change: still 1.
            #expect(broken["observedGeneration"]?.intValue == 2)
            #expect(
                self.condition(items, "shop/VirtualService/payments", "Accepted")?["observedGeneration"]?.intValue == 1)
            // Accepted did not change status, so its transition time did not move.
            #expect(
                self.condition(items, "shop/VirtualService/catalog", "Accepted")?["lastTransitionTime"]?.stringValue
                    == acceptedSince)

            // Fix it again: a third generation.
            try original.write(to: routing, atomically: true, encoding: .utf8)
            #expect(
                try await self.eventually {
                    self.condition(try await self.status(port), "shop/VirtualService/catalog", "ResolvedRefs")?[
                        "status"]?.stringValue == "True"
                })
            #expect(
                self.condition(try await self.status(port), "shop/VirtualService/catalog", "ResolvedRefs")?[
                    "observedGeneration"]?.intValue == 3)
        }
    }

    @Test("broken YAML in the folder is reported and the rest keeps being served")
    func brokenYAML() async throws {
        let folder = try self.shopFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try "apiVersion: v1\nkind: [unclosed\n".write(
            to: folder.appendingPathComponent("99-broken.yaml"),
            atomically: true, encoding: .utf8)
        let logger = Logger(label: "test")
        let state = ControllerState()
        let source = ManifestSource(path: folder.path, pollInterval: .milliseconds(50), logger: logger)
        let reconciler = Reconciler(source: source, state: state, logger: logger, quiet: .milliseconds(10))
        try await withThrowingTaskGroup(of: Void.self) { group throws in
            group.addTask { try await reconciler.run() }
            defer { group.cancelAll() }
            #expect(try await self.eventually { state.hasCompiled })
            #expect(
                source.problems.contains {
                    $0.file.hasSuffix("99-broken.yaml") && $0.line == 3 && $0.message.contains("flow sequence")
                })
            #expect(state.result.proxies.count == 6)
        }
    }
}
