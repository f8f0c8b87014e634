import AsyncHTTPClient
import Foundation
import KubeModel
import NIOCore
import NIOHTTP1
import Testing
import WeftTesting

/// `FakeAPIServer` over real HTTP, driven with AsyncHTTPClient: each test pins one API server behaviour the
/// controller relies on.
@Suite struct FakeAPIServerTests {
    static let virtualServices = "/apis/weft.dev/v1alpha1/namespaces/shop/virtualservices"
    static let configMaps = "/api/v1/namespaces/shop/configmaps"

    static func virtualService(_ name: String, hosts: [JSONValue] = ["web"], labels: JSONValue? = nil) -> JSONValue {
        var metadata: JSONObject = ["name": .string(name), "namespace": "shop"]
        if let labels { metadata["labels"] = labels }
        return [
            "apiVersion": "weft.dev/v1alpha1", "kind": "VirtualService", "metadata": .object(metadata),
            "spec": ["hosts": .array(hosts)],
        ]
    }

    static func configMap(_ name: String, namespace: String = "shop", labels: JSONValue? = nil) -> JSONValue {
        var metadata: JSONObject = ["name": .string(name), "namespace": .string(namespace)]
        if let labels { metadata["labels"] = labels }
        return ["apiVersion": "v1", "kind": "ConfigMap", "metadata": .object(metadata), "data": ["k": "v"]]
    }

    // MARK: - Create, get, resourceVersion

    @Test func createSetsServerFieldsAndResourceVersionsIncrease() async throws {
        try await withServer { server, api in
            let first = try await api.call(.POST, Self.virtualServices, json: Self.virtualService("web"))
            #expect(first.status == 201)
            let meta = first.json["metadata"]
            #expect(meta?["namespace"] == "shop")
            #expect(meta?["generation"] == 1)
            #expect(meta?["uid"]?.stringValue?.count == 36)
            let created = try #require(meta?["creationTimestamp"]?.stringValue)
            #expect(created.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/) != nil)
            let second = try await api.call(.POST, Self.virtualServices, json: Self.virtualService("api"))
            let v1 = try #require(Int(first.json["metadata"]?["resourceVersion"]?.stringValue ?? ""))
            let v2 = try #require(Int(second.json["metadata"]?["resourceVersion"]?.stringValue ?? ""))
            #expect(v2 > v1)
            #expect(server.resourceVersion == String(v2))

            let got = try await api.call(.GET, Self.virtualServices + "/web")
            #expect(got.status == 200)
            #expect(got.json == first.json)

            let again = try await api.call(.POST, Self.virtualServices, json: Self.virtualService("web"))
            #expect(again.status == 409)
            #expect(again.json["reason"] == "AlreadyExists")
            #expect(again.json["message"] == "virtualservices.weft.dev \"web\" already exists")

            let missing = try await api.call(.GET, Self.virtualServices + "/nope")
            #expect(missing.status == 404)
            #expect(missing.json["kind"] == "Status")
            #expect(missing.json["status"] == "Failure")
            #expect(missing.json["reason"] == "NotFound")
            #expect(missing.json["code"] == 404)
            #expect(missing.json["details"] == ["name": "nope", "group": "weft.dev", "kind": "virtualservices"])
        }
    }

    @Test func createValidatesTheBody() async throws {
        try await withServer { _, api in
            var other = Self.virtualService("web")
            other = .object(
                (other.objectValue ?? [:]).merging(["metadata": ["name": "web", "namespace": "other"]]) { $1 })
            #expect(try await api.call(.POST, Self.virtualServices, json: other).status == 400)
            let garbage = try await api.call(.POST, Self.virtualServices, text: "{not json")
            #expect(garbage.status == 400)
            #expect(garbage.json["reason"] == "BadRequest")
            let nameless = try await api.call(
                .POST, Self.virtualServices, json: ["apiVersion": "weft.dev/v1alpha1", "kind": "VirtualService"])
            #expect(nameless.status == 422)
            #expect(nameless.json["reason"] == "Invalid")
            let badName = try await api.call(.POST, Self.virtualServices, json: Self.virtualService("Web_1"))
            #expect(badName.status == 422)
            let generated = try await api.call(
                .POST, Self.configMaps, json: ["metadata": ["generateName": "cfg-"], "data": ["a": "b"]])
            #expect(generated.status == 201)
            let name = try #require(generated.json["metadata"]?["name"]?.stringValue)
            #expect(name.hasPrefix("cfg-") && name.count == 9)
            var withVersion = Self.configMap("x")
            withVersion = .object(
                (withVersion.objectValue ?? [:]).merging(["metadata": ["name": "x", "resourceVersion": "5"]]) { $1 })
            #expect(try await api.call(.POST, Self.configMaps, json: withVersion).status == 500)
            #expect(
                try await api.call(.POST, Self.configMaps, json: Self.configMap("y"), contentType: "text/plain").status
                    == 415)
            #expect(try await api.call(.GET, "/apis/weft.dev/v1alpha1/namespaces/shop/widgets").status == 404)
            #expect(try await api.call(.GET, "/healthz").json["reason"] == "NotFound")
        }
    }

    // MARK: - Update, generation, status

    @Test func staleUpdateConflictsAndGenerationFollowsTheSpec() async throws {
        try await withServer { server, api in
            let created = try await api.call(.POST, Self.virtualServices, json: Self.virtualService("web")).json
            var stale = Self.set(created, ["spec", "hosts"], ["web", "web.shop"])
            let fresh = try await api.call(.PUT, Self.virtualServices + "/web", json: stale)
            #expect(fresh.status == 200)
            #expect(fresh.json["metadata"]?["generation"] == 2)
            // `stale` still carries the first resourceVersion.
            stale = Self.set(stale, ["spec", "hosts"], ["other"])
            let conflict = try await api.call(.PUT, Self.virtualServices + "/web", json: stale)
            #expect(conflict.status == 409)
            #expect(conflict.json["reason"] == "Conflict")
            #expect(
                conflict.json["message"]
                    == "Operation cannot be fulfilled on virtualservices.weft.dev \"web\": the object has been modified; please apply your changes to the latest version and try again"
            )
            // Metadata changes keep the generation.
            let labelled = try await api.call(
                .PUT, Self.virtualServices + "/web", json: Self.set(fresh.json, ["metadata", "labels"], ["a": "b"]))
            #expect(labelled.json["metadata"]?["generation"] == 2)
            #expect(labelled.json["metadata"]?["labels"] == ["a": "b"])
            // No resourceVersion: unconditional.
            let blind = Self.set(
                Self.set(labelled.json, ["metadata", "resourceVersion"], nil), ["spec", "hosts"], ["x"])
            let unconditional = try await api.call(.PUT, Self.virtualServices + "/web", json: blind)
            #expect(unconditional.status == 200)
            #expect(unconditional.json["metadata"]?["generation"] == 3)
            // Writing the same object again writes nothing.
            let before = server.resourceVersion
            let same = try await api.call(.PUT, Self.virtualServices + "/web", json: unconditional.json)
            #expect(same.json == unconditional.json)
            #expect(server.resourceVersion == before)
            #expect(
                try await api.call(.PUT, Self.virtualServices + "/nope", json: Self.virtualService("nope")).status
                    == 404)
        }
    }

    @Test func theStatusSubresourceIsIsolated() async throws {
        try await withServer { _, api in
            var object = try await api.call(
                .POST, Self.virtualServices,
                json: Self.set(Self.virtualService("web"), ["status"], ["phase": "ignored"])
            ).json
            #expect(object["status"] == nil)
            // PUT /status: only status changes, never generation.
            let withStatus = Self.set(
                Self.set(object, ["status"], ["observedGeneration": 1]), ["spec", "hosts"], ["changed"])
            object = try await api.call(.PUT, Self.virtualServices + "/web/status", json: withStatus).json
            #expect(object["status"] == ["observedGeneration": 1])
            #expect(object["spec"] == ["hosts": ["web"]])
            #expect(object["metadata"]?["generation"] == 1)
            // PUT on the main resource: status is ignored.
            let mainPut = Self.set(
                Self.set(object, ["status"], ["observedGeneration": 99]), ["spec", "hosts"], ["new"])
            object = try await api.call(.PUT, Self.virtualServices + "/web", json: mainPut).json
            #expect(object["status"] == ["observedGeneration": 1])
            #expect(object["metadata"]?["generation"] == 2)
            // PATCH /status with a merge patch.
            let patched = try await api.call(
                .PATCH, Self.virtualServices + "/web/status", json: ["status": ["observedGeneration": 2], "spec": nil],
                contentType: "application/merge-patch+json")
            #expect(patched.json["status"] == ["observedGeneration": 2])
            #expect(patched.json["spec"] == ["hosts": ["new"]])
            #expect(patched.json["metadata"]?["generation"] == 2)
            // PATCH of the main resource ignores status.
            let mainPatch = try await api.call(
                .PATCH, Self.virtualServices + "/web", json: ["status": ["observedGeneration": 7]],
                contentType: "application/merge-patch+json")
            #expect(mainPatch.json["status"] == ["observedGeneration": 2])
            // ConfigMaps have no status subresource.
            _ = try await api.call(.POST, Self.configMaps, json: Self.configMap("c"))
            #expect(try await api.call(.PUT, Self.configMaps + "/c/status", json: Self.configMap("c")).status == 404)
        }
    }

    // MARK: - Patches

    @Test func mergeAndJSONPatches() async throws {
        try await withServer { _, api in
            _ = try await api.call(.POST, Self.virtualServices, json: Self.virtualService("web", hosts: ["a", "b"]))
            let merged = try await api.call(
                .PATCH, Self.virtualServices + "/web",
                json: ["metadata": ["labels": ["x/y": "1", "gone": "2"]], "spec": ["extra": "e"]],
                contentType: "application/merge-patch+json")
            #expect(merged.status == 200)
            #expect(merged.json["spec"] == ["hosts": ["a", "b"], "extra": "e"])
            #expect(merged.json["metadata"]?["generation"] == 2)
            let removed = try await api.call(
                .PATCH, Self.virtualServices + "/web", json: ["metadata": ["labels": ["gone": nil]]],
                contentType: "application/merge-patch+json")
            #expect(removed.json["metadata"]?["labels"] == ["x/y": "1"])

            let operations: JSONValue = [
                ["op": "test", "path": "/metadata/labels/x~1y", "value": "1"],
                ["op": "add", "path": "/spec/hosts/-", "value": "c"],
                ["op": "add", "path": "/spec/hosts/0", "value": "first"],
                ["op": "replace", "path": "/spec/extra", "value": "r"],
                ["op": "copy", "from": "/spec/extra", "path": "/spec/copied"],
                ["op": "move", "from": "/spec/copied", "path": "/spec/moved"],
                ["op": "remove", "path": "/spec/hosts/1"],
                ["op": "add", "path": "/spec/tilde~0key", "value": true],
            ]
            let patched = try await api.call(
                .PATCH, Self.virtualServices + "/web", json: operations, contentType: "application/json-patch+json")
            #expect(patched.status == 200)
            #expect(
                patched.json["spec"] == ["hosts": ["first", "b", "c"], "extra": "r", "moved": "r", "tilde~key": true])
            let failedTest = try await api.call(
                .PATCH, Self.virtualServices + "/web", json: [["op": "test", "path": "/spec/extra", "value": "no"]],
                contentType: "application/json-patch+json")
            #expect(failedTest.status == 422)
            let missingPath = try await api.call(
                .PATCH, Self.virtualServices + "/web", json: [["op": "remove", "path": "/spec/nothing"]],
                contentType: "application/json-patch+json")
            #expect(missingPath.status == 422)
            let malformed = try await api.call(
                .PATCH, Self.virtualServices + "/web", json: ["op": "add"], contentType: "application/json-patch+json")
            #expect(malformed.status == 400)
            #expect(
                try await api.call(
                    .PATCH, Self.virtualServices + "/nope", json: [:], contentType: "application/merge-patch+json"
                ).status == 404)
        }
    }

    @Test func serverSideApplyAndUnsupportedPatchTypes() async throws {
        try await withServer { _, api in
            let path = Self.virtualServices + "/web"
            let noManager = try await api.call(
                .PATCH, path, json: Self.virtualService("web"), contentType: "application/apply-patch+yaml")
            #expect(noManager.status == 422)
            #expect(
                noManager.json["message"]
                    == "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
            )
            let created = try await api.call(
                .PATCH, path + "?fieldManager=weft&force=true", json: Self.virtualService("web"),
                contentType: "application/apply-patch+yaml")
            #expect(created.status == 201)
            let entry = created.json["metadata"]?["managedFields"]?.arrayValue?.first
            #expect(entry?["manager"] == "weft")
            #expect(entry?["operation"] == "Apply")
            #expect(entry?["apiVersion"] == "weft.dev/v1alpha1")
            #expect(entry?["time"]?.stringValue != nil)
            let applied = try await api.call(
                .PATCH, path + "?fieldManager=weft", json: Self.virtualService("web", hosts: ["web", "api"]),
                contentType: "application/apply-patch+yaml")
            #expect(applied.status == 200)
            #expect(applied.json["spec"] == ["hosts": ["web", "api"]])
            #expect(applied.json["metadata"]?["generation"] == 2)
            #expect(applied.json["metadata"]?["managedFields"]?.arrayValue?.count == 1)
            let wrongVersion = try await api.call(
                .PATCH, path + "?fieldManager=weft", json: ["kind": "VirtualService", "metadata": ["name": "web"]],
                contentType: "application/apply-patch+yaml")
            #expect(wrongVersion.status == 400)

            let strategic = try await api.call(
                .PATCH, path, json: ["spec": [:]], contentType: "application/strategic-merge-patch+json")
            #expect(strategic.status == 415)
            #expect(strategic.json["reason"] == "UnsupportedMediaType")
            _ = try await api.call(.POST, Self.configMaps, json: Self.configMap("c"))
            let builtIn = try await api.call(
                .PATCH, Self.configMaps + "/c", json: ["data": ["k2": "v2"]],
                contentType: "application/strategic-merge-patch+json")
            #expect(builtIn.status == 200)
            #expect(builtIn.json["data"] == ["k": "v", "k2": "v2"])
            #expect(try await api.call(.PATCH, path, json: [:], contentType: "application/json").status == 415)
            #expect(
                try await api.call(.PATCH, path + "?force=true", json: [:], contentType: "application/merge-patch+json")
                    .status == 422)
        }
    }

    // MARK: - Delete

    @Test func deleteAnswersAndFinalizers() async throws {
        try await withServer { server, api in
            _ = try await api.call(.POST, Self.virtualServices, json: Self.virtualService("web"))
            let deleted = try await api.call(.DELETE, Self.virtualServices + "/web")
            #expect(deleted.status == 200)
            #expect(deleted.json["kind"] == "Status")
            #expect(deleted.json["status"] == "Success")
            #expect(try await api.call(.DELETE, Self.virtualServices + "/web").status == 404)

            try server.seed(["apiVersion": "v1", "kind": "Pod", "metadata": ["name": "p", "namespace": "shop"]])
            let pod = try await api.call(.DELETE, "/api/v1/namespaces/shop/pods/p")
            #expect(pod.json["kind"] == "Pod")

            let finalized = Self.set(Self.virtualService("fin"), ["metadata", "finalizers"], ["weft.dev/cleanup"])
            _ = try await api.call(.POST, Self.virtualServices, json: finalized)
            let marked = try await api.call(.DELETE, Self.virtualServices + "/fin")
            #expect(marked.json["metadata"]?["deletionTimestamp"]?.stringValue != nil)
            #expect(
                server.object(
                    group: "weft.dev", version: "v1alpha1", plural: "virtualservices", namespace: "shop", name: "fin")
                    != nil)
            let released = try await api.call(
                .PATCH, Self.virtualServices + "/fin", json: ["metadata": ["finalizers": nil]],
                contentType: "application/merge-patch+json")
            #expect(released.status == 200)
            #expect(
                server.object(
                    group: "weft.dev", version: "v1alpha1", plural: "virtualservices", namespace: "shop", name: "fin")
                    == nil)
        }
    }

    // MARK: - Lists

    @Test func listPagesAreConsistentAndExpire() async throws {
        try await withServer { server, api in
            for (namespace, name) in [("shop", "b"), ("shop", "a"), ("alpha", "z"), ("shop", "c"), ("zeta", "a")] {
                try server.seed(Self.configMap(name, namespace: namespace))
            }
            let listVersion = server.resourceVersion
            var names: [String] = []
            var token: String?
            var pages = 0
            repeat {
                let query = "?limit=2" + (token.map { "&continue=\($0)" } ?? "")
                let page = try await api.call(.GET, "/api/v1/configmaps" + query)
                #expect(page.status == 200)
                #expect(page.json["kind"] == "ConfigMapList")
                #expect(page.json["apiVersion"] == "v1")
                #expect(page.json["metadata"]?["resourceVersion"]?.stringValue == listVersion)
                names += (page.json["items"]?.arrayValue ?? []).compactMap {
                    guard let namespace = $0["metadata"]?["namespace"]?.stringValue,
                        let name = $0["metadata"]?["name"]?.stringValue
                    else { return nil }
                    return "\(namespace)/\(name)"
                }
                token = page.json["metadata"]?["continue"]?.stringValue
                pages += 1
                if pages == 1 {
                    #expect(page.json["metadata"]?["remainingItemCount"] == 3)
                    // Written after the first page: the next pages still show the list as it was.
                    try server.seed(Self.configMap("later", namespace: "zeta"))
                }
            } while token != nil && pages < 10
            #expect(names == ["alpha/z", "shop/a", "shop/b", "shop/c", "zeta/a"])
            #expect(pages == 3)

            let first = try await api.call(.GET, Self.configMaps + "?limit=1")
            let next = try #require(first.json["metadata"]?["continue"]?.stringValue)
            try server.seed(Self.configMap("newer"))
            server.expireHistory()
            let expired = try await api.call(.GET, Self.configMaps + "?limit=1&continue=\(next)")
            #expect(expired.status == 410)
            #expect(expired.json["reason"] == "Expired")
            #expect(
                expired.json["message"]?.stringValue?.hasPrefix("The provided continue parameter is too old") == true)
            #expect(try await api.call(.GET, Self.configMaps + "?continue=garbage").status == 400)
        }
    }

    static let selectorCases: [(String, [String])] = [
        ("", ["a", "b", "c", "d"]),
        ("app=web", ["a", "b"]),
        ("app==web", ["a", "b"]),
        ("app!=web", ["c", "d"]),
        ("app in (web, db)", ["a", "b", "c"]),
        ("app notin (web)", ["c", "d"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
        ("app=web,tier=back", ["b"]),
        ("app in (web),!tier", []),
    ]

    @Test(arguments: Self.selectorCases)
    func labelSelectorsFilterLists(selector: String, expected: [String]) async throws {
        try await withServer { server, api in
            try Self.seedPods(server)
            let list = try await api.call(.GET, "/api/v1/namespaces/shop/pods?labelSelector=" + Self.escape(selector))
            #expect(list.status == 200)
            #expect(Self.names(list.json["items"]) == expected)
        }
    }

    @Test func fieldSelectorsAndBadSelectors() async throws {
        try await withServer { server, api in
            try Self.seedPods(server)
            try server.seed(["apiVersion": "v1", "kind": "Pod", "metadata": ["name": "a", "namespace": "other"]])
            let byName = try await api.call(.GET, "/api/v1/pods?fieldSelector=" + Self.escape("metadata.name=a"))
            #expect(Self.names(byName.json["items"]) == ["a", "a"])
            let both = try await api.call(
                .GET, "/api/v1/pods?fieldSelector=" + Self.escape("metadata.name=a,metadata.namespace!=shop"))
            #expect(byName.status == 200)
            #expect(both.json["items"]?.arrayValue?.first?["metadata"]?["namespace"] == "other")
            #expect(both.json["items"]?.arrayValue?.count == 1)
            #expect(try await api.call(.GET, "/api/v1/pods?fieldSelector=spec.nodeName%3Dx").status == 400)
            #expect(try await api.call(.GET, "/api/v1/pods?labelSelector=" + Self.escape("app in web")).status == 400)
        }
    }

    // MARK: - Helpers

    static func seedPods(_ server: FakeAPIServer) throws {
        let labels: [String: JSONValue] = [
            "a": ["app": "web", "tier": "front"], "b": ["app": "web", "tier": "back"], "c": ["app": "db"], "d": [:],
        ]
        for (name, labels) in labels {
            try server.seed([
                "apiVersion": "v1", "kind": "Pod",
                "metadata": ["name": .string(name), "namespace": "shop", "labels": labels],
            ])
        }
    }

    static func names(_ items: JSONValue?) -> [String] {
        (items?.arrayValue ?? []).compactMap { $0["metadata"]?["name"]?.stringValue }
    }

    static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
    }

    /// The object with the member at `path` set (or removed when nil).
    static func set(_ object: JSONValue, _ path: [String], _ value: JSONValue?) -> JSONValue {
        guard let key = path.first else { return value ?? .null }
        var members = object.objectValue ?? [:]
        members[key] = path.count == 1 ? value : Self.set(members[key] ?? .object([:]), Array(path.dropFirst()), value)
        return .object(members)
    }
}

// MARK: - Watches, fault injection, introspection

@Suite struct FakeAPIServerWatchTests {
    static let virtualServices = FakeAPIServerTests.virtualServices

    @Test func resourceVersionZeroStartsWithTheCurrentObjects() async throws {
        try await withServer { server, api in
            try server.seed(FakeAPIServerTests.virtualService("b"))
            try server.seed(FakeAPIServerTests.virtualService("a"))
            var watch = try await api.watch(Self.virtualServices + "?watch=true&resourceVersion=0")
            #expect(watch.headers.first(name: "transfer-encoding") == "chunked")
            #expect(try await watch.next()?.summary == "ADDED a")
            #expect(try await watch.next()?.summary == "ADDED b")
            _ = try await api.call(.POST, Self.virtualServices, json: FakeAPIServerTests.virtualService("c"))
            _ = try await api.call(
                .PATCH, Self.virtualServices + "/c", json: ["spec": ["hosts": ["x"]]],
                contentType: "application/merge-patch+json")
            _ = try await api.call(.DELETE, Self.virtualServices + "/c")
            let added = try #require(try await watch.next())
            #expect(added.summary == "ADDED c")
            let modified = try #require(try await watch.next())
            #expect(modified.summary == "MODIFIED c")
            let deleted = try #require(try await watch.next())
            #expect(deleted.summary == "DELETED c")
            #expect(added.version < modified.version && modified.version < deleted.version)
            #expect(deleted.version == Int(server.resourceVersion))
        }
    }

    @Test func aWatchResumesFromAResourceVersion() async throws {
        try await withServer { server, api in
            try server.seed(FakeAPIServerTests.virtualService("old"))
            let from = server.resourceVersion
            try server.seed(FakeAPIServerTests.virtualService("one"))
            try server.seed(FakeAPIServerTests.configMap("not-a-vs"))
            try server.seed(FakeAPIServerTests.virtualService("two"))
            try server.seed(FakeAPIServerTests.virtualService("one", hosts: ["changed"]))
            var watch = try await api.watch(Self.virtualServices + "?watch=1&resourceVersion=\(from)")
            var seen: [String] = []
            for _ in 0..<3 { seen.append(try #require(try await watch.next()).summary) }
            #expect(seen == ["ADDED one", "ADDED two", "MODIFIED one"])
        }
    }

    @Test func labelSelectorsFilterWatchEvents() async throws {
        try await withServer { server, api in
            var watch = try await api.watch(Self.virtualServices + "?watch=true&labelSelector=app%3Dweb")
            try server.seed(FakeAPIServerTests.virtualService("other", labels: ["app": "db"]))
            try server.seed(FakeAPIServerTests.virtualService("web", labels: ["app": "web"]))
            try server.seed(FakeAPIServerTests.virtualService("web", labels: ["app": "web-v2"]))
            try server.seed(FakeAPIServerTests.virtualService("other", labels: ["app": "web"]))
            #expect(try await watch.next()?.summary == "ADDED web")
            let left = try #require(try await watch.next())
            #expect(left.summary == "DELETED web")  // stopped matching: its previous state, at the new version
            #expect(left.event["object"]?["metadata"]?["labels"] == ["app": "web"])
            #expect(try await watch.next()?.summary == "ADDED other")
        }
    }

    @Test func anExpiredResourceVersionGetsA410ErrorEvent() async throws {
        try await withServer(historyWindow: 2) { server, api in
            for name in ["a", "b", "c", "d"] { try server.seed(FakeAPIServerTests.virtualService(name)) }
            var watch = try await api.watch(Self.virtualServices + "?watch=true&resourceVersion=2")
            let error = try #require(try await watch.next())
            #expect(error.event["type"] == "ERROR")
            let status = error.event["object"]
            #expect(status?["kind"] == "Status")
            #expect(status?["code"] == 410)
            #expect(status?["reason"] == "Expired")
            #expect(status?["message"]?.stringValue?.hasPrefix("too old resource version: 2 (") == true)
            #expect(try await watch.next() == nil)

            let current = server.resourceVersion
            server.expireHistory()
            var afterExpiry = try await api.watch(
                Self.virtualServices + "?watch=true&resourceVersion=\(Int(current)! - 1)")
            #expect(try await afterExpiry.next()?.event["object"]?["code"] == 410)
            var fromNow = try await api.watch(
                Self.virtualServices + "?watch=true&resourceVersion=\(current)&timeoutSeconds=1")
            #expect(try await fromNow.next() == nil)  // no error: the current version is still valid
        }
    }

    @Test func bookmarksArrive() async throws {
        try await withServer(bookmarkInterval: .milliseconds(100)) { server, api in
            try server.seed(FakeAPIServerTests.virtualService("a"))
            let version = server.resourceVersion
            var watch = try await api.watch(
                Self.virtualServices + "?watch=true&allowWatchBookmarks=true&resourceVersion=\(version)")
            let bookmark = try #require(try await watch.next())
            #expect(bookmark.event["type"] == "BOOKMARK")
            #expect(
                bookmark.event["object"] == [
                    "kind": "VirtualService", "apiVersion": "weft.dev/v1alpha1",
                    "metadata": ["resourceVersion": .string(version)],
                ])
            try server.seed(FakeAPIServerTests.virtualService("b"))
            var next = try #require(try await watch.next())
            while next.event["type"] == "BOOKMARK" { next = try #require(try await watch.next()) }
            #expect(next.summary == "ADDED b")
            let later = try #require(try await watch.next())
            #expect(later.event["type"] == "BOOKMARK")
            #expect(later.version == Int(server.resourceVersion))
        }
    }

    @Test func timeoutSecondsEndsTheStreamCleanly() async throws {
        try await withServer { server, api in
            let started = ContinuousClock.now
            var watch = try await api.watch(Self.virtualServices + "?watch=true&timeoutSeconds=1")
            #expect(try await watch.next() == nil)
            // Ended by the server's timeout, not earlier. (No upper bound: a busy machine may take longer; a
            // stream that never ends fails the test by hanging past its suite's limit.)
            let elapsed = ContinuousClock.now - started
            #expect(elapsed >= .milliseconds(900))
            #expect(try await eventually { server.openWatches == 0 })
            // The connection is reusable: the next request works.
            #expect(try await api.call(.GET, Self.virtualServices).status == 200)
        }
    }

    @Test func cutWatchesBreaksTheStream() async throws {
        try await withServer { server, api in
            try server.seed(FakeAPIServerTests.virtualService("a"))
            var watch = try await api.watch(Self.virtualServices + "?watch=true")
            #expect(server.openWatches == 1, "the watch is registered before its head goes out")
            #expect(try await watch.next()?.summary == "ADDED a")
            server.cutWatches()
            var broken = false
            do {
                while try await watch.next() != nil {}
            } catch {
                broken = true
            }
            #expect(broken)
            #expect(server.openWatches == 0)
        }
    }

    @Test func failNextInjectsErrors() async throws {
        try await withServer { server, api in
            server.failNext(2, status: 503, method: "GET", pathContains: "/configmaps")
            let first = try await api.call(.GET, FakeAPIServerTests.configMaps)
            #expect(first.status == 503)
            #expect(first.json["reason"] == "ServiceUnavailable")
            #expect(first.json["kind"] == "Status")
            #expect(try await api.call(.GET, Self.virtualServices).status == 200)  // another path
            #expect(
                try await api.call(.POST, FakeAPIServerTests.configMaps, json: FakeAPIServerTests.configMap("x")).status
                    == 201)
            #expect(try await api.call(.GET, FakeAPIServerTests.configMaps).status == 503)
            #expect(try await api.call(.GET, FakeAPIServerTests.configMaps).status == 200)
            server.failNext(1)
            #expect(try await api.call(.GET, Self.virtualServices + "?watch=true").status == 500)
        }
    }

    @Test func requestsAreRecorded() async throws {
        try await withServer { server, api in
            _ = try await api.call(
                .POST, Self.virtualServices + "?fieldManager=weft", json: FakeAPIServerTests.virtualService("a"))
            _ = try await api.call(.GET, Self.virtualServices + "/a")
            _ = try await api.call(.GET, Self.virtualServices + "/a")
            _ = try await api.call(
                .PATCH, Self.virtualServices + "/a/status", json: ["status": ["x": 1]],
                contentType: "application/merge-patch+json")
            #expect(server.count() == 4)
            #expect(server.count(method: "GET", pathContains: "/virtualservices/a") == 2)
            #expect(server.count(method: "patch", pathContains: "/status") == 1)
            #expect(server.writeCount() == 2)
            let post = try #require(server.requests.first)
            #expect(post.method == "POST")
            #expect(post.path == Self.virtualServices)
            #expect(post.query == ["fieldManager": "weft"])
            #expect(post.contentType == "application/json")
            #expect(post.body.contains("\"VirtualService\""))
            server.resetRequests()
            #expect(server.requests.isEmpty)
        }
    }

    @Test func typedAccessAndTokenReviews() async throws {
        try await withServer { server, api in
            var configMap = core.v1.ConfigMap.new(namespace: "shop", name: "settings")
            configMap.data = ["mode": "strict"]
            try server.seed(configMap)
            let stored = try #require(server.get(core.v1.ConfigMap.self, namespace: "shop", name: "settings"))
            #expect(stored.data == ["mode": "strict"])
            #expect(stored.metadata.generation == 1)
            #expect(server.list(core.v1.ConfigMap.self).count == 1)
            #expect(server.remove(group: "", version: "v1", plural: "configmaps", namespace: "shop", name: "settings"))
            #expect(server.get(core.v1.ConfigMap.self, namespace: "shop", name: "settings") == nil)

            server.setTokenReview(
                token: "t0k3n", username: "system:serviceaccount:shop:web", groups: ["system:serviceaccounts"])
            let path = "/apis/authentication.k8s.io/v1/tokenreviews"
            let known = try await api.call(
                .POST, path,
                json: ["apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": ["token": "t0k3n"]])
            #expect(known.status == 201)
            #expect(known.json["status"]?["authenticated"] == true)
            #expect(known.json["status"]?["user"]?["username"] == "system:serviceaccount:shop:web")
            let unknown = try await api.call(.POST, path, json: ["kind": "TokenReview", "spec": ["token": "other"]])
            #expect(unknown.json["status"]?["authenticated"] == false)
            #expect(try await api.call(.GET, path).status == 405)
        }
    }
}

// MARK: - HTTP through AsyncHTTPClient

/// Starts a server, runs `body`, and shuts the server down whatever happens.
private func withServer(
    historyWindow: Int = 1000, bookmarkInterval: Duration = .seconds(1),
    _ body: (FakeAPIServer, TestAPI) async throws -> Void
) async throws {
    let server = try await FakeAPIServer.start(historyWindow: historyWindow, bookmarkInterval: bookmarkInterval)
    do {
        try await withThrowingTaskGroup(of: Void.self) { group in
            // A watchdog: a test waiting for an event that never comes fails instead of hanging, because
            // shutting the server down breaks its streams.
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                guard !Task.isCancelled else { return }
                Issue.record("the test took more than 30 seconds; shutting the server down")
                try? await server.shutdown()
            }
            do {
                try await body(server, TestAPI(baseURL: server.baseURL))
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    } catch {
        try? await server.shutdown()
        throw error
    }
    try await server.shutdown()
}

/// Polls a condition for up to 30 s (a cap reached only when the test fails).
private func eventually(_ condition: () -> Bool) async throws -> Bool {
    for _ in 0..<600 {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return condition()
}

private struct TestAPI {
    struct Answer {
        var status: Int
        var json: JSONValue
    }

    let baseURL: String

    func call(
        _ method: HTTPMethod, _ path: String, json: JSONValue? = nil, text: String? = nil,
        contentType: String? = "application/json"
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: self.baseURL + path)
        request.method = method
        if let contentType, json != nil || text != nil { request.headers.add(name: "Content-Type", value: contentType) }
        if let body = try text ?? json.map({ String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }) {
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 16 << 20)
        return Answer(
            status: Int(response.status.code), json: (try? JSONValue.parse(Data(body.readableBytesView))) ?? .null)
    }

    func watch(_ path: String) async throws -> TestWatch {
        let request = HTTPClientRequest(url: self.baseURL + path)
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
        #expect(response.status == .ok)
        return TestWatch(headers: response.headers, iterator: response.body.makeAsyncIterator())
    }
}

/// A watch stream read line by line.
private struct TestWatch {
    struct Event: Equatable {
        var event: JSONValue
        /// `ADDED name`.
        var summary: String {
            "\(self.event["type"]?.stringValue ?? "?") \(self.event["object"]?["metadata"]?["name"]?.stringValue ?? "?")"
        }
        var version: Int { Int(self.event["object"]?["metadata"]?["resourceVersion"]?.stringValue ?? "") ?? -1 }
    }

    let headers: HTTPHeaders
    var iterator: HTTPClientResponse.Body.AsyncIterator
    var buffer: [UInt8] = []

    /// The next event; nil when the server ended the stream. Throws when the connection broke.
    mutating func next() async throws -> Event? {
        while true {
            if let newline = self.buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(self.buffer[..<newline])
                self.buffer.removeSubrange(...newline)
                return Event(event: try JSONValue.parse(line))
            }
            guard let chunk = try await self.iterator.next() else { return nil }
            self.buffer.append(contentsOf: chunk.readableBytesView)
        }
    }
}
