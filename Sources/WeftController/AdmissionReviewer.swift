import Foundation
import KubeModel
import Logging
import WeftAPI
import WeftCompiler

/// The admission webhooks' logic, apart from HTTP and TLS: an AdmissionReview v1 in, an AdmissionReview out.
///
/// `/inject` runs ``Injector`` on Pod CREATEs and answers a base64 JSONPatch; `/validate` runs
/// ``ResourceAdmission`` on the four Weft kinds. A body that is not an AdmissionReview v1 with a request gets
/// HTTP 400 and the reason (`x-weft-reason: malformed_admission_review`); a pod or resource that cannot be
/// read gets an AdmissionReview that refuses it, naming the field. The request's `uid` is always echoed.
public struct AdmissionReviewer: Sendable {
    /// What the webhooks read from the controller.
    public struct Context: Sendable {
        /// The injection settings now (flags and `weft-config`).
        public var injectionSettings: @Sendable () async -> InjectionSettings
        /// A namespace's labels; nil when it is not known.
        public var namespaceLabels: @Sendable (String) async -> [String: String]?
        /// The cluster as last compiled, for the validator's warnings; nil when not known yet.
        public var snapshot: @Sendable () async -> WeftSnapshot?

        public init(
            injectionSettings: @escaping @Sendable () async -> InjectionSettings = { InjectionSettings() },
            namespaceLabels: @escaping @Sendable (String) async -> [String: String]? = { _ in nil },
            snapshot: @escaping @Sendable () async -> WeftSnapshot? = { nil }
        ) {
            self.injectionSettings = injectionSettings
            self.namespaceLabels = namespaceLabels
            self.snapshot = snapshot
        }
    }

    /// An HTTP answer.
    public struct Answer: Sendable, Hashable {
        public var status: Int
        public var reason: String?
        public var body: String
    }

    public static let maxBodyBytes = 3 << 20

    let context: Context
    let logger: Logger

    public init(context: Context, logger: Logger) {
        self.context = context
        self.logger = logger
    }

    /// Answers a POST of `body` to `path`.
    public func answer(path: String, body: [UInt8]) async -> Answer {
        guard path == "/inject" || path == "/validate" else {
            return Answer(status: 404, reason: "not_found", body: "no such path: \(path); try /inject or /validate\n")
        }
        let request: admission.v1.AdmissionRequest
        do {
            let json = try JSONParser.parse(body)
            let review = try JSONValueDecoder().decode(admission.v1.AdmissionReview.self, from: json)
            guard review.apiVersion == "admission.k8s.io/v1", review.kind == "AdmissionReview" else {
                return Self.malformed(
                    "expected apiVersion admission.k8s.io/v1, kind AdmissionReview; got \(review.apiVersion), "
                        + review.kind)
            }
            guard let found = review.request else { return Self.malformed("the AdmissionReview has no request") }
            request = found
        } catch {
            return Self.malformed("the body is not an AdmissionReview: \(Injector.describe(error, under: ""))")
        }
        let response =
            path == "/inject" ? await self.inject(request) : await self.validate(request)
        var review = admission.v1.AdmissionReview(response: response)
        review.request = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(review) else {
            return Answer(status: 500, reason: "internal_error", body: "the answer does not encode\n")
        }
        return Answer(status: 200, reason: nil, body: String(decoding: data, as: UTF8.self))
    }

    static func malformed(_ message: String) -> Answer {
        Answer(status: 400, reason: "malformed_admission_review", body: message + "\n")
    }

    static func refusal(_ uid: String, code: Int, reason: String, _ message: String) -> admission.v1.AdmissionResponse {
        admission.v1.AdmissionResponse(
            uid: uid, allowed: false, status: meta.v1.Status(message: message, reason: reason, code: code))
    }

    // MARK: - /inject

    func inject(_ request: admission.v1.AdmissionRequest) async -> admission.v1.AdmissionResponse {
        guard request.kind.kind == "Pod", request.kind.group.isEmpty, request.subResource == nil,
            request.operation == "CREATE"
        else {
            return admission.v1.AdmissionResponse(uid: request.uid, allowed: true)
        }
        guard let object = request.object else {
            return Self.refusal(
                request.uid, code: 400, reason: "BadRequest", "weft injection: the request has no object")
        }
        let namespace = request.namespace ?? object["metadata"]?["namespace"]?.stringValue ?? "default"
        let labels = await self.context.namespaceLabels(namespace) ?? [:]
        let settings = await self.context.injectionSettings()
        do {
            let result = try Injector.inject(
                object: object, namespace: namespace, namespaceLabels: labels, settings: settings)
            let name = object["metadata"]?["name"]?.stringValue ?? object["metadata"]?["generateName"]?.stringValue
            guard result.injected else {
                self.logger.debug(
                    "not injected",
                    metadata: [
                        "k8s.namespace": "\(namespace)", "k8s.name": "\(name ?? "")",
                        "reason": "\(result.skipped ?? "")",
                    ])
                return admission.v1.AdmissionResponse(uid: request.uid, allowed: true)
            }
            let patch = try JSONEncoder().encode(result.patch.json)
            self.logger.info("injected", metadata: ["k8s.namespace": "\(namespace)", "k8s.name": "\(name ?? "")"])
            return admission.v1.AdmissionResponse(
                uid: request.uid, allowed: true, patch: patch.base64EncodedString(), patchType: "JSONPatch",
                warnings: result.warnings.isEmpty ? nil : result.warnings.map { "weft injection: \($0)" })
        } catch let error as InjectionError {
            return Self.refusal(request.uid, code: 400, reason: "BadRequest", "weft injection: \(error.message)")
        } catch {
            return Self.refusal(request.uid, code: 500, reason: "InternalError", "weft injection: \(error)")
        }
    }

    // MARK: - /validate

    func validate(_ request: admission.v1.AdmissionRequest) async -> admission.v1.AdmissionResponse {
        guard request.kind.group == weft.v1alpha1.group, ResourceAdmission.kinds.contains(request.kind.kind),
            request.operation == "CREATE" || request.operation == "UPDATE", request.subResource == nil
        else {
            return admission.v1.AdmissionResponse(uid: request.uid, allowed: true)
        }
        guard let object = request.object else {
            return Self.refusal(request.uid, code: 400, reason: "BadRequest", "the request has no object")
        }
        let verdict = ResourceAdmission.review(
            kind: request.kind.kind, object: object, namespace: request.namespace,
            snapshot: await self.context.snapshot())
        let name = request.name ?? object["metadata"]?["name"]?.stringValue ?? ""
        let label = "\(request.kind.kind) \(request.namespace.map { "\($0)/" } ?? "")\(name)"
        guard verdict.errors.isEmpty else {
            var response = Self.refusal(
                request.uid, code: 422, reason: "Invalid",
                "\(label) is invalid: " + verdict.errors.joined(separator: "; "))
            response.status?.details = [
                "name": .string(name), "group": .string(weft.v1alpha1.group), "kind": .string(request.kind.kind),
                "causes": .array(
                    verdict.errors.map { error in
                        guard let colon = error.range(of: ": ") else {
                            return ["reason": "FieldValueInvalid", "message": .string(error)]
                        }
                        return [
                            "reason": "FieldValueInvalid", "field": .string(String(error[..<colon.lowerBound])),
                            "message": .string(String(error[colon.upperBound...])),
                        ]
                    }),
            ]
            return response
        }
        return admission.v1.AdmissionResponse(
            uid: request.uid, allowed: true, warnings: verdict.warnings.isEmpty ? nil : verdict.warnings)
    }
}
