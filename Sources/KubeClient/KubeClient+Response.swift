import Foundation
import KubeModel

// MARK: - Decoding answers

extension KubeClient {
    /// Decodes a 2xx answer through `JSONValueDecoder`, so that a mismatch names the field path.
    static func decode<T: Decodable>(_ type: T.Type, from body: [UInt8], request: Request) throws -> T {
        let value: JSONValue
        do {
            value = try JSONValue.parse(Data(body))
        } catch {
            throw KubeClientError(
                code: .malformedResponse, message: "the answer is not JSON: \(Self.preview(body))",
                request: request.description, cause: error)
        }
        do {
            return try JSONValueDecoder().decode(type, from: value)
        } catch let error as DecodingError {
            throw KubeClientError(
                code: .malformedResponse, message: "cannot decode \(type): \(Self.describe(error))",
                request: request.description, cause: error)
        }
    }

    /// The error of a non-2xx answer: the `Status` the server sent, or one made from the HTTP status and the
    /// body's text when the body is not a `Status` (a proxy or load balancer answered).
    static func apiError(httpStatus: Int, body: [UInt8], request: Request) -> KubeClientError {
        var status =
            Self.decodeStatus(body)
            ?? meta.v1.Status(
                message: body.isEmpty ? "HTTP \(httpStatus)" : Self.preview(body),
                reason: Self.reason(forHTTPStatus: httpStatus), code: httpStatus)
        if status.code == nil { status.code = httpStatus }
        if status.reason == nil || status.reason == "" { status.reason = Self.reason(forHTTPStatus: httpStatus) }
        return KubeClientError(
            code: .api, message: status.message ?? "HTTP \(httpStatus)", status: status,
            request: request.description)
    }

    /// A `Status` object, or nil when the body is something else.
    static func decodeStatus(_ body: [UInt8]) -> meta.v1.Status? {
        guard let value = try? JSONValue.parse(Data(body)), value["kind"]?.stringValue == "Status" else {
            return nil
        }
        return try? JSONValueDecoder().decode(meta.v1.Status.self, from: value)
    }

    /// The reason the API server gives for an HTTP status (`k8s.io/apimachinery` `StatusReason`).
    static func reason(forHTTPStatus code: Int) -> String {
        switch code {
        case 400: "BadRequest"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "NotFound"
        case 405: "MethodNotAllowed"
        case 406: "NotAcceptable"
        case 409: "Conflict"
        case 410: "Gone"
        case 413: "RequestEntityTooLarge"
        case 415: "UnsupportedMediaType"
        case 422: "Invalid"
        case 429: "TooManyRequests"
        case 500: "InternalError"
        case 503: "ServiceUnavailable"
        case 504: "Timeout"
        default: "Unknown"
        }
    }

    /// `spec.http[0].route: expected an array, found a string`.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            var text = ""
            for key in keys {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
                }
            }
            return text.isEmpty ? "(top level)" : text
        }
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])): required, missing"
        @unknown default:
            return "\(error)"
        }
    }

    /// At most 1 KiB of a body as text, for messages.
    static func preview(_ body: [UInt8]) -> String {
        let limit = 1024
        let text = String(decoding: body.prefix(limit), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return body.count > limit ? text + "…" : text
    }
}
