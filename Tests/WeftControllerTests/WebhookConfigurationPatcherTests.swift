import Foundation
import KubeClient
import KubeModel
import Logging
import Testing
import WeftController
import WeftTesting

/// The leader keeps the webhook configurations' caBundle (and url) on the mesh CA, against the fake API server.
@Suite("Webhook configurations' caBundle", .serialized)
struct WebhookConfigurationPatcherTests {
    static let bundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

    static func mutating() throws -> admissionregistration.v1.MutatingWebhookConfiguration {
        try JSONDecoder().decode(
            admissionregistration.v1.MutatingWebhookConfiguration.self,
            from: Data(
                """
                {"apiVersion":"admissionregistration.k8s.io/v1","kind":"MutatingWebhookConfiguration",
                 "metadata":{"name":"weft-injector"},
                 "webhooks":[
                  {"name":"namespace.inject.weft.dev","admissionReviewVersions":["v1"],"sideEffects":"None",
                   "clientConfig":{"service":{"name":"weft-controller","namespace":"weft-system","path":"/inject","port":443},
                                   "caBundle":""}},
                  {"name":"object.inject.weft.dev","admissionReviewVersions":["v1"],"sideEffects":"None",
                   "clientConfig":{"service":{"name":"weft-controller","namespace":"weft-system","path":"/inject","port":443}}}]}
                """.utf8))
    }

    static func validating() throws -> admissionregistration.v1.ValidatingWebhookConfiguration {
        try JSONDecoder().decode(
            admissionregistration.v1.ValidatingWebhookConfiguration.self,
            from: Data(
                """
                {"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingWebhookConfiguration",
                 "metadata":{"name":"weft-validator"},
                 "webhooks":[{"name":"validate.weft.dev","sideEffects":"None","timeoutSeconds":10,
                   "clientConfig":{"service":{"name":"weft-controller","namespace":"weft-system","path":"/validate"}}}]}
                """.utf8))
    }

    func eventually(seconds: Double = 60, _ check: () throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try check() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func unknownFieldsSurviveTheModel() throws {
        let object = try Self.mutating()
        let again = try JSONDecoder().decode(
            admissionregistration.v1.MutatingWebhookConfiguration.self, from: JSONEncoder().encode(object))
        #expect(again == object)
        #expect(object.webhooks?.first?.unknownFields["sideEffects"] == .string("None"))
    }

    @Test func nothingToPatchWhenTheBundleIsThere() throws {
        let encoded = Data(Self.bundle.utf8).base64EncodedString()
        var webhooks = try #require(try Self.mutating().webhooks)
        for index in webhooks.indices { webhooks[index].clientConfig?.caBundle = encoded }
        #expect(WebhookConfigurationPatcher.patch(for: webhooks, caBundle: encoded, url: nil).isEmpty)
        #expect(!WebhookConfigurationPatcher.patch(for: webhooks, caBundle: encoded, url: "https://x:1/inject").isEmpty)
    }

    @Test func patchesBothAndAgainAfterAnEdit() async throws {
        try await FakeAPIServer.start().withClient(logger: Logger(label: "test")) { server, client in
            try server.seed(try Self.mutating())
            try server.seed(try Self.validating())
            let patcher = WebhookConfigurationPatcher(
                api: client, trustBundle: Self.bundle, isLeader: { true }, watchSeconds: 5,
                retryDelay: .milliseconds(50),
                logger: Logger(label: "test"))
            let encoded = Data(Self.bundle.utf8).base64EncodedString()
            func bundles() -> [String?] {
                let injector = server.get(
                    admissionregistration.v1.MutatingWebhookConfiguration.self, namespace: nil, name: "weft-injector")
                let validator = server.get(
                    admissionregistration.v1.ValidatingWebhookConfiguration.self, namespace: nil, name: "weft-validator"
                )
                return ((injector?.webhooks ?? []) + (validator?.webhooks ?? [])).map { $0.clientConfig?.caBundle }
            }
            try await withThrowingTaskGroup { group in
                group.addTask { try await patcher.run() }
                let patched = try await self.eventually { bundles() == [encoded, encoded, encoded] }
                #expect(patched)
                // The other fields are kept.
                let injector = try #require(
                    server.get(
                        admissionregistration.v1.MutatingWebhookConfiguration.self, namespace: nil,
                        name: "weft-injector"))
                #expect(injector.webhooks?.first?.unknownFields["admissionReviewVersions"] == .array([.string("v1")]))
                #expect(injector.webhooks?.first?.clientConfig?.service != nil)
                // `kubectl apply -k manifests/` again empties it: the watch puts it back.
                var reset = try Self.validating()
                reset.metadata.resourceVersion =
                    server.get(
                        admissionregistration.v1.ValidatingWebhookConfiguration.self, namespace: nil,
                        name: "weft-validator"
                    )?
                    .metadata.resourceVersion
                reset.webhooks?[0].clientConfig?.caBundle = ""
                _ = try await client.update(reset)
                let patchedAgain = try await self.eventually { bundles() == [encoded, encoded, encoded] }
                #expect(patchedAgain)
                group.cancelAll()
            }
        }
    }

    @Test func webhookURLReplacesTheService() async throws {
        try await FakeAPIServer.start().withClient(logger: Logger(label: "test")) { server, client in
            try server.seed(try Self.mutating())
            try server.seed(try Self.validating())
            let patcher = WebhookConfigurationPatcher(
                api: client, trustBundle: Self.bundle, webhookURL: "https://192.168.1.20:15017", isLeader: { true },
                watchSeconds: 5, retryDelay: .milliseconds(50), logger: Logger(label: "test"))
            try await withThrowingTaskGroup { group in
                group.addTask { try await patcher.run() }
                let validatorPointsThere = try await self.eventually {
                    let hook = server.get(
                        admissionregistration.v1.ValidatingWebhookConfiguration.self, namespace: nil,
                        name: "weft-validator")?.webhooks?.first
                    return hook?.clientConfig?.url == "https://192.168.1.20:15017/validate"
                        && hook?.clientConfig?.service == nil
                }
                #expect(validatorPointsThere)
                let injectorPointsThere = try await self.eventually {
                    let hooks =
                        server.get(
                            admissionregistration.v1.MutatingWebhookConfiguration.self, namespace: nil,
                            name: "weft-injector")?.webhooks ?? []
                    return hooks.count == 2
                        && hooks.allSatisfy { $0.clientConfig?.url == "https://192.168.1.20:15017/inject" }
                }
                #expect(injectorPointsThere)
                group.cancelAll()
            }
        }
    }

    @Test func theControllerPatchesWhenAskedTo() async throws {
        try await FakeAPIServer.start().withClient(logger: Logger(label: "test")) { server, client in
            try server.seed(try Self.mutating())
            try server.seed(try Self.validating())
            var options = KubernetesController.Options(leaderElection: nil)
            options.trustBundle = Self.bundle
            options.patchWebhookConfigurations = true
            let controller = KubernetesController(
                api: client, state: ControllerState(), options: options, logger: Logger(label: "test"))
            let encoded = Data(Self.bundle.utf8).base64EncodedString()
            try await withThrowingTaskGroup { group in
                group.addTask { try await controller.run() }
                let patched = try await self.eventually {
                    server.get(
                        admissionregistration.v1.ValidatingWebhookConfiguration.self, namespace: nil,
                        name: "weft-validator")?.webhooks?.first?.clientConfig?.caBundle == encoded
                }
                #expect(patched)
                group.cancelAll()
            }
        }
    }
}
