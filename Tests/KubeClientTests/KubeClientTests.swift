import Foundation
import KubeModel
import Logging
import NIOSSL
import Testing
import WeftAPI

@testable import KubeClient

@Suite("KubeClient requests")
struct KubeClientRequestTests {
    typealias Request = KubeClient.Request

    @Test("paths come from ResourcePath: core, groups, cluster scope, subresources")
    func paths() throws {
        #expect(
            Request.get(core.v1.Pod.self, namespace: "shop", name: "web-1").description
                == "GET /api/v1/namespaces/shop/pods/web-1")
        #expect(Request.get(core.v1.Namespace.self, namespace: nil, name: "shop").path == "/api/v1/namespaces/shop")
        #expect(
            Request.list(weft.v1alpha1.VirtualService.self, namespace: nil, options: ListOptions()).path
                == "/apis/weft.dev/v1alpha1/virtualservices")
        #expect(
            Request.delete(weft.v1alpha1.VirtualService.self, namespace: "shop", name: "web").description
                == "DELETE /apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/web")

        var service = weft.v1alpha1.VirtualService()
        service.metadata.namespace = "shop"
        service.metadata.name = "web"
        let status = try Request.update(service, namespace: "shop", subresource: "status")
        #expect(status.description == "PUT /apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/web/status")
        #expect(status.verb == "update")
        let create = try Request.create(service, namespace: "shop")
        #expect(create.description == "POST /apis/weft.dev/v1alpha1/namespaces/shop/virtualservices")
        #expect(create.contentType == "application/json")
    }

    @Test("query values are percent-encoded")
    func queryEncoding() {
        let options = ListOptions(
            labelSelector: "app in (web,api),tier!=db", fieldSelector: "spec.nodeName=node-1", limit: 50,
            continue: "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTJ9+/=")
        let request = Request.list(core.v1.Pod.self, namespace: "shop", options: options)
        #expect(
            request.target == "/api/v1/namespaces/shop/pods"
                + "?labelSelector=app%20in%20%28web%2Capi%29%2Ctier%21%3Ddb"
                + "&fieldSelector=spec.nodeName%3Dnode-1&limit=50"
                + "&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTJ9%2B%2F%3D")
        #expect(Request.percentEncode("a-b_c.d~e é") == "a-b_c.d~e%20%C3%A9")
    }

    @Test("a list with a continue token leaves resourceVersion out; without one it is sent")
    func listResourceVersion() {
        let first = Request.list(core.v1.Pod.self, namespace: nil, options: ListOptions(limit: 2, resourceVersion: "0"))
        #expect(first.target == "/api/v1/pods?limit=2&resourceVersion=0")
        let next = Request.list(
            core.v1.Pod.self, namespace: nil, options: ListOptions(limit: 2, continue: "abc", resourceVersion: "0"))
        #expect(next.target == "/api/v1/pods?limit=2&continue=abc")
    }

    @Test("a watch asks for watch=1, bookmarks and the server timeout")
    func watchQuery() {
        let options = WatchOptions(resourceVersion: "1234", timeoutSeconds: 300, labelSelector: "app=web")
        let request = Request.watch(weft.v1alpha1.VirtualService.self, namespace: "shop", options: options)
        #expect(request.verb == "watch")
        #expect(
            request.target == "/apis/weft.dev/v1alpha1/namespaces/shop/virtualservices"
                + "?watch=1&resourceVersion=1234&allowWatchBookmarks=true&timeoutSeconds=300&labelSelector=app%3Dweb")
        let plain = Request.watch(core.v1.Pod.self, namespace: nil, options: WatchOptions(allowWatchBookmarks: false))
        #expect(plain.target == "/api/v1/pods?watch=1")
    }

    @Test(
        "each patch kind has its content type and body",
        arguments: [
            (
                KubePatch.merge(["metadata": ["labels": ["a": "b"]]]), "application/merge-patch+json",
                #"{"metadata":{"labels":{"a":"b"}}}"#
            ),
            (
                KubePatch.json([JSONPatchOperation(op: "replace", path: "/spec/hosts/0", value: "web")]),
                "application/json-patch+json", #"[{"op":"replace","path":"/spec/hosts/0","value":"web"}]"#
            ),
            (
                KubePatch.apply(["spec": ["hosts": ["web"]]]), "application/apply-patch+yaml",
                #"{"apiVersion":"weft.dev/v1alpha1","kind":"VirtualService","spec":{"hosts":["web"]}}"#
            ),
        ])
    func patchKinds(patch: KubePatch, contentType: String, body: String) throws {
        let request = try Request.patch(
            weft.v1alpha1.VirtualService.self, namespace: "shop", name: "web", patch: patch,
            options: PatchOptions(fieldManager: "weft-controller"))
        #expect(request.method == .patch)
        #expect(request.contentType == contentType)
        #expect(String(decoding: request.body ?? [], as: UTF8.self) == body)
        #expect(
            request.target == "/apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/web?fieldManager=weft-controller"
        )
    }

    @Test("apply needs a field manager; force is for apply only")
    func applyRules() throws {
        let missing = try #require(throws: KubeClientError.self) {
            try Request.patch(
                core.v1.Pod.self, namespace: "shop", name: "web", patch: .apply([:]), options: PatchOptions())
        }
        #expect(missing.code == .configuration)
        #expect(missing.message.contains("fieldManager"))
        #expect(missing.request == "PATCH /api/v1/namespaces/shop/pods/web")

        let forcedMerge = try #require(throws: KubeClientError.self) {
            try Request.patch(
                core.v1.Pod.self, namespace: "shop", name: "web", patch: .merge([:]),
                options: PatchOptions(fieldManager: "m", force: true))
        }
        #expect(forcedMerge.code == .configuration)

        let forced = try Request.patch(
            core.v1.Pod.self, namespace: "shop", name: "web", patch: .apply(["metadata": ["name": "web"]]),
            options: PatchOptions(subresource: "status", fieldManager: "weft controller", force: true))
        #expect(forced.target == "/api/v1/namespaces/shop/pods/web/status?fieldManager=weft%20controller&force=true")
    }

    @Test("create and update bodies are JSON with apiVersion and kind")
    func objectBodies() throws {
        var pod = core.v1.Pod()
        pod.metadata.name = "web-1"
        pod.metadata.resourceVersion = "42"
        let body = try JSONValue.parse(Data(try Request.update(pod, namespace: "shop").body ?? []))
        #expect(body["apiVersion"] == "v1")
        #expect(body["kind"] == "Pod")
        #expect(body["metadata"]?["resourceVersion"] == "42")

        let unnamed = try #require(throws: KubeClientError.self) {
            try Request.update(core.v1.Pod(), namespace: "shop")
        }
        #expect(unnamed.message.contains("metadata.name"))
    }
}

@Suite("KubeClient answers")
struct KubeClientAnswerTests {
    let request = KubeClient.Request(
        verb: "patch", method: .patch, path: "/apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/web")

    @Test("a Status answer is decoded with its reason and code")
    func statusAnswer() {
        let body =
            #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"virtualservices.weft.dev \"web\" not found","reason":"NotFound","details":{"name":"web","group":"weft.dev","kind":"virtualservices"},"code":404}"#
        let error = KubeClient.apiError(httpStatus: 404, body: Array(body.utf8), request: self.request)
        #expect(error.code == .api)
        #expect(error.isNotFound)
        #expect(error.reason == "NotFound")
        #expect(error.status?.details?["name"] == "web")
        #expect(error.request == "PATCH /apis/weft.dev/v1alpha1/namespaces/shop/virtualservices/web")
        #expect(error.description.contains("404 NotFound"))
    }

    @Test(
        "a body that is not a Status becomes one from the HTTP status",
        arguments: [
            (409, "Conflict"), (410, "Gone"), (429, "TooManyRequests"), (502, "Unknown"), (503, "ServiceUnavailable"),
        ])
    func synthesizedStatus(code: Int, reason: String) {
        let error = KubeClient.apiError(
            httpStatus: code, body: Array("<html>upstream said no</html>".utf8), request: self.request)
        #expect(error.httpStatus == code)
        #expect(error.reason == reason)
        #expect(error.status?.message == "<html>upstream said no</html>")
        #expect(error.isConflict == (code == 409))
        #expect(error.isGone == (code == 410))
        let empty = KubeClient.apiError(httpStatus: code, body: [], request: self.request)
        #expect(empty.message == "HTTP \(code)")
    }

    @Test("a malformed answer names the field path")
    func decodingErrors() throws {
        let body =
            #"{"apiVersion":"weft.dev/v1alpha1","kind":"VirtualService","metadata":{"name":"web"},"spec":{"hosts":[7]}}"#
        let error = try #require(throws: KubeClientError.self) {
            try KubeClient.decode(weft.v1alpha1.VirtualService.self, from: Array(body.utf8), request: self.request)
        }
        #expect(error.code == .malformedResponse)
        #expect(error.message.contains("spec.hosts[0]"))
        #expect(error.request == self.request.description)

        let notJSON = try #require(throws: KubeClientError.self) {
            try KubeClient.decode(core.v1.Pod.self, from: Array("nope".utf8), request: self.request)
        }
        #expect(notJSON.code == .malformedResponse)
    }
}

@Suite("KubeClient setup")
struct KubeClientSetupTests {
    static let certificatePEM = """
        -----BEGIN CERTIFICATE-----
        MIIBfzCCASWgAwIBAgIUaRp+N3YX1242bHCUEmIUrk8g4kYwCgYIKoZIzj0EAwIw
        FDESMBAGA1UEAwwJd2VmdC10ZXN0MCAXDTI2MTEyNDIyMzMxMloYDzIxMjYxMDMx
        MjIzMzEyWjAUMRIwEAYDVQQDDAl3ZWZ0LXRlc3QwWTATBgcqhkjOPQIBBggqhkjO
        PQMBBwNCAASziNTOyJBBm3ouJu1g+PMrsExOjHZo0CFCwpdsLHFp7GglvO8HXhtb
        ZkmE8qCAmiaEutC7umd0JrjxzZa4TkhRo1MwUTAdBgNVHQ4EFgQUT6SnSsebbJt/
        1SmwA6xQ+u61ZeMwHwYDVR0jBBgwFoAUT6SnSsebbJt/1SmwA6xQ+u61ZeMwDwYD
        VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiAJ1EE3jMhFmivR2X8NIe4c
        CB8K3F5+KIX28KqvGnXMfwIhAK7op85hijBxLki1Mgs4A1SXBeDpT8dkAq6Bjq4t
        0wFT
        -----END CERTIFICATE-----

        """
    static let keyPEM = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7Sb9aBh12RNEgr+z
        L3NkvhTKj+HZsLB96W1JrZsF1yGhRANCAASziNTOyJBBm3ouJu1g+PMrsExOjHZo
        0CFCwpdsLHFp7GglvO8HXhtbZkmE8qCAmiaEutC7umd0JrjxzZa4TkhR
        -----END PRIVATE KEY-----

        """

    static let server = URL(string: "https://kube.example.com:6443") ?? URL(fileURLWithPath: "/")

    @Test("TLS: CA trust roots, client certificate and key, insecure")
    func tls() throws {
        let configuration = KubeConfiguration(
            server: Self.server, auth: .clientCertificate(certificatePEM: Self.certificatePEM, keyPEM: Self.keyPEM),
            certificateAuthorityPEM: Self.certificatePEM, insecureSkipTLSVerify: true)
        let tls = try KubeClient.tlsConfiguration(configuration)
        #expect(tls.certificateVerification == .none)
        #expect(tls.certificateChain.count == 1)
        #expect(tls.privateKey != nil)
        #expect(tls.trustRoots != nil)

        let secure = try KubeClient.tlsConfiguration(KubeConfiguration(server: Self.server))
        #expect(secure.certificateVerification == .fullVerification)
    }

    @Test("a CA or key that is not PEM is a configuration error")
    func badPEM() throws {
        let badCA = try #require(throws: KubeClientError.self) {
            try KubeClient.tlsConfiguration(KubeConfiguration(server: Self.server, certificateAuthorityPEM: "junk"))
        }
        #expect(badCA.code == .configuration)
        let badKey = try #require(throws: KubeClientError.self) {
            try KubeClient.tlsConfiguration(
                KubeConfiguration(
                    server: Self.server, auth: .clientCertificate(certificatePEM: Self.certificatePEM, keyPEM: "junk")))
        }
        #expect(badKey.message.contains("client key"))
    }

    @Test("a refused connection is a transport error naming the request")
    func transportError() async throws {
        let url = try #require(URL(string: "http://127.0.0.1:1"))
        let client = try KubeClient(
            configuration: KubeConfiguration(server: url, auth: .bearerToken("t")),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), requestTimeout: .seconds(2))
        let error = await #expect(throws: KubeClientError.self) {
            _ = try await client.get(core.v1.Pod.self, namespace: nil, name: "web-1")
        }
        #expect(error?.code == .transport)
        #expect(error?.request == "GET /api/v1/namespaces/default/pods/web-1")
        #expect(error?.cause != nil)
        try await client.shutdown()
    }
}
