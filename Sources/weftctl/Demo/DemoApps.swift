import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import WeftHTTP

/// The demo's apps: small HTTP servers that know nothing of the mesh. The frontend reaches catalog and payments
/// through its own proxy's outbound listener, naming the service in `Host`, as an app does in the explicit-proxy
/// mode (no transparent capture yet).
enum DemoApps {
    /// The answer of one call through a proxy.
    struct Answer: Sendable {
        var status: Int
        var reason: String?
        var body: String
        var seconds: Double

        /// 403 from an AuthorizationPolicy.
        var denied: Bool { self.status == 403 && self.reason == "rbac_denied" }
    }

    /// `GET path` with `Host: host` through the proxy listening on `port` (10 s at most).
    static func call(port: Int?, host: String, path: String) async -> Answer {
        let clock = ContinuousClock()
        let start = clock.now
        func seconds() -> Double {
            let (whole, attoseconds) = (clock.now - start).components
            return Double(whole) + Double(attoseconds) / 1e18
        }
        guard let port else { return Answer(status: 0, body: "proxy not listening", seconds: 0) }
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.headers.add(name: "host", value: host)
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 64 * 1024)
            return Answer(
                status: Int(response.status.code), reason: response.headers.first(name: "x-weft-reason"),
                body: String(buffer: body), seconds: seconds())
        } catch {
            return Answer(status: 0, body: "\(error)", seconds: seconds())
        }
    }

    /// The app of `workload`; `outboundPort` reads its proxy's outbound port (the frontend's calls go there).
    static func responder(
        for workload: DemoWorkload, stats: DemoStats, outboundPort: @escaping @Sendable () -> Int?
    ) -> EndpointServer.Responder {
        switch workload.role {
        case .loadGenerator:
            return { _ in EndpointServer.Response(.notFound, "the load generator serves nothing\n") }
        case .frontend:
            return { head in
                if head.path.hasPrefix("/admin") {
                    // The AuthorizationPolicy should have stopped this at the frontend's proxy.
                    return EndpointServer.Response(.ok, "admin page (the policy did not deny it)\n")
                }
                let port = outboundPort()
                let catalog = await Self.call(port: port, host: "catalog", path: "/products")
                let version = catalog.body.hasPrefix("catalog ") ? String(catalog.body.dropFirst(8)) : nil
                stats.record(
                    .catalog, status: catalog.status, denied: catalog.denied, seconds: catalog.seconds,
                    version: (200..<300).contains(catalog.status) ? version : nil)
                let payments = await Self.call(port: port, host: "payments", path: "/pay")
                stats.record(.payments, status: payments.status, denied: payments.denied, seconds: payments.seconds)
                let ok = (200..<300).contains(catalog.status) && (200..<300).contains(payments.status)
                return EndpointServer.Response(
                    ok ? .ok : .badGateway, "\(catalog.body); \(payments.body) (\(catalog.status)/\(payments.status))\n"
                )
            }
        case .catalog(let version):
            return { _ in EndpointServer.Response(.ok, "catalog \(version)") }
        case .payments(let flaky):
            let served = ServedCount()
            return { _ in
                let count = served.value.wrappingAdd(1, ordering: .relaxed).newValue
                if flaky && count % 3 == 0 {
                    return EndpointServer.Response(.serviceUnavailable, "payments failed")
                }
                return EndpointServer.Response(.ok, "payments ok")
            }
        }
    }
}

/// A request counter a responder closure can hold (an `Atomic` needs a stable address).
private final class ServedCount: Sendable {
    let value = Atomic<Int>(0)
}
