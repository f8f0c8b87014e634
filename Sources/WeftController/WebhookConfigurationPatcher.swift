import Foundation
import KubeClient
import KubeModel
import Logging
import ServiceLifecycle

/// Keeps the admission webhooks' registrations pointing at this controller with the mesh CA as their trust:
/// `webhooks[*].clientConfig.caBundle` of MutatingWebhookConfiguration `weft-injector` and
/// ValidatingWebhookConfiguration `weft-validator` is set to base64 of the trust bundle PEM, and with
/// `--webhook-url` their `clientConfig.url` is set (`service` removed). Leader only: the configuration is read,
/// patched with an RFC 6902 JSON patch when it differs (each index guarded by a `test` of the webhook's name, so
/// a concurrent edit makes the patch fail and the next round reads again), then watched by name; a change is
/// patched again. A watch ends after `watchSeconds`, which is also how soon a new leader takes over the job.
public struct WebhookConfigurationPatcher: Service {
    public static let injectorName = "weft-injector"
    public static let validatorName = "weft-validator"

    private let api: any KubeAPI
    private let caBundle: String
    private let webhookURL: String?
    private let isLeader: @Sendable () -> Bool
    private let watchSeconds: Int
    private let retryDelay: Duration
    private let logger: Logger

    /// - Parameters:
    ///   - trustBundle: the PEM the API server should trust for the webhooks.
    ///   - webhookURL: `https://HOST:PORT` when the API server reaches the controller by URL; `/inject` and
    ///     `/validate` are appended.
    public init(
        api: any KubeAPI, trustBundle: String, webhookURL: String? = nil,
        isLeader: @escaping @Sendable () -> Bool, watchSeconds: Int = 30, retryDelay: Duration = .seconds(2),
        logger: Logger
    ) {
        self.api = api
        self.caBundle = Data(trustBundle.utf8).base64EncodedString()
        self.webhookURL = webhookURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.isLeader = isLeader
        self.watchSeconds = watchSeconds
        self.retryDelay = retryDelay
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await self.keep(
                        admissionregistration.v1.MutatingWebhookConfiguration.self,
                        name: Self.injectorName, path: "/inject", webhooks: { $0.webhooks ?? [] })
                }
                group.addTask {
                    await self.keep(
                        admissionregistration.v1.ValidatingWebhookConfiguration.self,
                        name: Self.validatorName, path: "/validate", webhooks: { $0.webhooks ?? [] })
                }
            }
        }
    }

    /// The JSON patch that brings `webhooks` to the wanted clientConfig; empty when nothing differs.
    public static func patch(
        for webhooks: [admissionregistration.v1.Webhook], caBundle: String, url: String?
    ) -> [JSONPatchOperation] {
        var operations: [JSONPatchOperation] = []
        for (index, webhook) in webhooks.enumerated() {
            let base = "/webhooks/\(index)"
            var changes: [JSONPatchOperation] = []
            guard let config = webhook.clientConfig else {
                var object: JSONObject = ["caBundle": .string(caBundle)]
                if let url { object["url"] = .string(url) }
                changes.append(JSONPatchOperation(op: "add", path: "\(base)/clientConfig", value: .object(object)))
                operations += Self.guarded(webhook, base) + changes
                continue
            }
            if config.caBundle != caBundle {
                changes.append(
                    JSONPatchOperation(op: "add", path: "\(base)/clientConfig/caBundle", value: .string(caBundle)))
            }
            if let url {
                if config.url != url {
                    changes.append(JSONPatchOperation(op: "add", path: "\(base)/clientConfig/url", value: .string(url)))
                }
                if config.service != nil {
                    changes.append(JSONPatchOperation(op: "remove", path: "\(base)/clientConfig/service"))
                }
            }
            if !changes.isEmpty { operations += Self.guarded(webhook, base) + changes }
        }
        return operations
    }

    private static func guarded(_ webhook: admissionregistration.v1.Webhook, _ base: String) -> [JSONPatchOperation] {
        guard let name = webhook.name else { return [] }
        return [JSONPatchOperation(op: "test", path: "\(base)/name", value: .string(name))]
    }

    private func keep<R: KubeResource>(
        _ type: R.Type, name: String, path: String,
        webhooks: @escaping @Sendable (R) -> [admissionregistration.v1.Webhook]
    ) async {
        let url = self.webhookURL.map { $0 + path }
        while !Task.isCancelled {
            do {
                if self.isLeader() {
                    let current = try await self.api.get(type, namespace: nil, name: name)
                    try await self.reconcile(current, name: name, url: url, webhooks: webhooks)
                    let events = try await self.api.watch(
                        type, namespace: nil,
                        options: WatchOptions(
                            resourceVersion: current.metadata.resourceVersion, allowWatchBookmarks: false,
                            timeoutSeconds: self.watchSeconds, fieldSelector: "metadata.name=\(name)"))
                    for try await event in events {
                        guard self.isLeader() else { break }
                        switch event {
                        case .added(let object), .modified(let object):
                            try await self.reconcile(object, name: name, url: url, webhooks: webhooks)
                        case .error(let status):
                            self.logger.debug("webhook configuration watch ended", metadata: ["status": "\(status)"])
                        case .deleted, .bookmark: break
                        }
                    }
                    continue
                }
            } catch is CancellationError {
                return
            } catch {
                self.logger.warning(
                    "could not keep the webhook configuration's caBundle; retrying",
                    metadata: ["k8s.name": "\(name)", "error": "\(error)"])
            }
            do { try await Task.sleep(for: self.retryDelay) } catch { return }
        }
    }

    private func reconcile<R: KubeResource>(
        _ object: R, name: String, url: String?, webhooks: (R) -> [admissionregistration.v1.Webhook]
    ) async throws {
        let operations = Self.patch(for: webhooks(object), caBundle: self.caBundle, url: url)
        guard !operations.isEmpty else { return }
        _ = try await self.api.patch(
            R.self, namespace: nil, name: name, patch: .json(operations), options: PatchOptions())
        self.logger.info("patched the webhook configuration's clientConfig", metadata: ["k8s.name": "\(name)"])
    }
}
