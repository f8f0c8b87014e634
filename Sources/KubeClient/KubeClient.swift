import AsyncHTTPClient
import Foundation
import KubeModel
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOSSL

/// The Kubernetes API over HTTP(S), on AsyncHTTPClient.
///
/// Every request sends `Accept: application/json`, `User-Agent: weft-controller/0.1` and, when configured, a
/// bearer token; errors carry the server's `Status` and the request (`PATCH /apis/...`). Each request is
/// counted in `weft_kube_requests_total{verb,code}` and timed in `weft_kube_request_duration_seconds{verb}`, and
/// logged at debug level. Call ``shutdown()`` before dropping the client.
///
/// A named call on a namespaced kind without a namespace (`get(Pod.self, namespace: nil, ...)`, or `create` of an
/// object without `metadata.namespace`) uses the configuration's namespace; `list` and `watch` without one
/// span all namespaces.
public final class KubeClient: KubeAPI {
    /// The configuration the client was made with.
    public let configuration: KubeConfiguration
    let httpClient: HTTPClient
    let logger: Logger
    let baseURL: String
    let tokenSource: BearerTokenSource
    let requestTimeout: Duration
    let maxResponseBytes: Int
    /// Set on the view from ``ignoringCancellation(timeout:)``: requests run on the event loop to the end,
    /// bounded by this, whatever happens to the calling task.
    let cancellationShield: Duration?

    static let userAgent = "weft-controller/0.1"

    /// A client for `configuration`.
    ///
    /// - Parameters:
    ///   - configuration: The server and credentials.
    ///   - logger: Requests are logged here at debug level.
    ///   - requestTimeout: The deadline of each request except watches (whose deadline is their
    ///     `timeoutSeconds` plus a minute, or an hour).
    ///   - maxResponseBytes: A larger answer fails rather than exhaust memory (a list answer can be large).
    /// - Throws: `KubeClientError` with code `.configuration` when a PEM cannot be read.
    public init(
        configuration: KubeConfiguration, logger: Logger, requestTimeout: Duration = .seconds(60),
        maxResponseBytes: Int = 256 << 20
    ) throws {
        let tls = try Self.tlsConfiguration(configuration)
        var httpConfiguration = HTTPClient.Configuration(
            tlsConfiguration: tls, redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(10), read: nil))
        // Over HTTP/1.1 every open watch holds a connection; over TLS the server speaks HTTP/2 and multiplexes.
        httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        self.httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        self.configuration = configuration
        self.logger = logger
        var base = configuration.server.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.tokenSource = BearerTokenSource(configuration.auth)
        self.requestTimeout = requestTimeout
        self.maxResponseBytes = maxResponseBytes
        self.cancellationShield = nil
    }

    /// The same client (connections, credentials) with its requests shielded from cancellation.
    private init(sharing client: KubeClient, cancellationShield: Duration) {
        self.configuration = client.configuration
        self.httpClient = client.httpClient
        self.logger = client.logger
        self.baseURL = client.baseURL
        self.tokenSource = client.tokenSource
        self.requestTimeout = client.requestTimeout
        self.maxResponseBytes = client.maxResponseBytes
        self.cancellationShield = cancellationShield
    }

    /// A view of this client whose requests are sent and answered even when the calling task is cancelled,
    /// each within `timeout` (client-go's "release with a fresh context"): what a stopping leader needs to
    /// give up its Lease. The view shares this client's connections; shut down this client, not the view.
    /// Watches are not shielded.
    public func ignoringCancellation(timeout: Duration) -> any KubeAPI {
        KubeClient(sharing: self, cancellationShield: timeout)
    }

    /// Closes the connections. Call it once, when the client is no longer used.
    public func shutdown() async throws {
        do {
            try await self.httpClient.shutdown()
        } catch {
            throw KubeClientError(code: .transport, message: "shutting down the HTTP client failed", cause: error)
        }
    }

    /// The TLS settings: trust roots from the CA PEM, the client certificate and key, no verification when
    /// insecure.
    static func tlsConfiguration(_ configuration: KubeConfiguration) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = configuration.certificateAuthorityPEM {
            do {
                let certificates = try NIOSSLCertificate.fromPEMBytes(Array(ca.utf8))
                guard !certificates.isEmpty else {
                    throw KubeClientError(code: .configuration, message: "the CA PEM holds no certificate")
                }
                tls.trustRoots = .certificates(certificates)
            } catch let error as KubeClientError {
                throw error
            } catch {
                throw KubeClientError(
                    code: .configuration, message: "the certificate authority is not valid PEM", cause: error)
            }
        }
        if configuration.insecureSkipTLSVerify {
            tls.certificateVerification = .none
        }
        if case .clientCertificate(let certificatePEM, let keyPEM) = configuration.auth {
            do {
                let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8))
                guard !chain.isEmpty else {
                    throw KubeClientError(
                        code: .configuration, message: "the client certificate PEM holds no certificate")
                }
                tls.certificateChain = chain.map { .certificate($0) }
            } catch let error as KubeClientError {
                throw error
            } catch {
                throw KubeClientError(
                    code: .configuration, message: "the client certificate is not valid PEM", cause: error)
            }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem))
            } catch {
                throw KubeClientError(code: .configuration, message: "the client key is not valid PEM", cause: error)
            }
        }
        return tls
    }
}

// MARK: - Sending

extension KubeClient {
    /// Sends a request and returns the body of its 2xx answer; any other answer throws its API error.
    func send(_ request: Request) async throws -> [UInt8] {
        if let shield = self.cancellationShield { return try await self.sendShielded(request, timeout: shield) }
        let start = ContinuousClock.now
        let response = try await self.execute(request, timeout: self.requestTimeout, start: start)
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: self.maxResponseBytes)
        } catch {
            self.record(request, code: "error", start: start)
            throw self.transportError(error, request: request, message: "reading the answer failed")
        }
        let status = Int(response.status.code)
        self.record(request, code: String(status), start: start)
        let bytes = Array(buffer: body)
        guard (200..<300).contains(status) else {
            throw Self.apiError(httpStatus: status, body: bytes, request: request)
        }
        return bytes
    }

    /// Sends a request whose answer streams: returns once the headers of a 2xx answer arrived; any other
    /// answer throws its API error.
    func stream(_ request: Request, timeout: Duration) async throws -> HTTPClientResponse {
        let start = ContinuousClock.now
        let response = try await self.execute(request, timeout: timeout, start: start)
        let status = Int(response.status.code)
        self.record(request, code: String(status), start: start)
        guard (200..<300).contains(status) else {
            let body = (try? await response.body.collect(upTo: 1 << 20)).map { Array(buffer: $0) } ?? []
            throw Self.apiError(httpStatus: status, body: body, request: request)
        }
        return response
    }

    /// Builds the HTTP request and executes it up to the response head.
    private func execute(
        _ request: Request, timeout: Duration, start: ContinuousClock.Instant
    ) async throws
        -> HTTPClientResponse
    {
        var http = HTTPClientRequest(url: self.baseURL + request.target)
        http.method = request.method.http
        http.headers = try self.headers(for: request)
        if let body = request.body { http.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            return try await self.httpClient.execute(http, timeout: Self.timeAmount(timeout), logger: self.logger)
        } catch {
            self.record(request, code: "error", start: start)
            throw self.transportError(error, request: request, message: "the request failed")
        }
    }

    /// `send` through AsyncHTTPClient's future-based API: the request runs on the event loop and the wait for
    /// its answer does not end when the calling task is cancelled; `timeout` bounds it.
    private func sendShielded(_ request: Request, timeout: Duration) async throws -> [UInt8] {
        let start = ContinuousClock.now
        let response: HTTPClient.Response
        do {
            let http = try HTTPClient.Request(
                url: self.baseURL + request.target, method: request.method.http, headers: self.headers(for: request),
                body: request.body.map { .bytes($0) })
            response = try await self.httpClient.execute(
                request: http, deadline: .now() + Self.timeAmount(timeout), logger: self.logger
            ).get()
        } catch let error as KubeClientError {
            throw error
        } catch {
            self.record(request, code: "error", start: start)
            throw KubeClientError(
                code: .transport, message: "the request failed", request: request.description, cause: error)
        }
        let status = Int(response.status.code)
        self.record(request, code: String(status), start: start)
        let bytes = response.body.map { Array(buffer: $0) } ?? []
        guard (200..<300).contains(status) else {
            throw Self.apiError(httpStatus: status, body: bytes, request: request)
        }
        return bytes
    }

    /// Accept, User-Agent, the bearer token, and the body's content type.
    private func headers(for request: Request) throws -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Accept", value: "application/json")
        headers.add(name: "User-Agent", value: Self.userAgent)
        let authorization: String?
        do {
            authorization = try self.tokenSource.authorization()
        } catch {
            throw KubeClientError(
                code: .configuration, message: "no bearer token", request: request.description, cause: error)
        }
        if let authorization { headers.add(name: "Authorization", value: authorization) }
        if request.body != nil {
            headers.add(name: "Content-Type", value: request.contentType ?? "application/json")
        }
        return headers
    }

    /// A transport error, or `CancellationError` when the task was cancelled.
    func transportError(_ error: any Error, request: Request, message: String) -> any Error {
        if error is CancellationError || Task.isCancelled { return CancellationError() }
        if let error = error as? KubeClientError { return error }
        return KubeClientError(code: .transport, message: message, request: request.description, cause: error)
    }

    /// Counts and times a request, and logs it at debug level.
    func record(_ request: Request, code: String, start: ContinuousClock.Instant) {
        let elapsed = start.duration(to: ContinuousClock.now)
        let nanoseconds = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        Counter(label: "weft_kube_requests_total", dimensions: [("verb", request.verb), ("code", code)]).increment()
        Metrics.Timer(
            label: "weft_kube_request_duration_seconds", dimensions: [("verb", request.verb)],
            preferredDisplayUnit: .seconds
        ).recordNanoseconds(nanoseconds)
        self.logger.debug(
            "kube request",
            metadata: [
                "k8s.verb": "\(request.verb)",
                "http.request.method": "\(request.method.rawValue)",
                "url.path": "\(request.path)",
                "http.response.status_code": "\(code)",
                "kube.request.duration_ms": "\(nanoseconds / 1_000_000)",
            ])
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
