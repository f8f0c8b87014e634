import Foundation
import Synchronization

/// The services whose calls the demo measures, each from its caller's side: frontend as the load generator sees
/// it, catalog and payments as the frontend sees them (after its proxy's retries).
enum DemoService: String, CaseIterable, Sendable, Codable {
    case frontend
    case catalog
    case payments
}

/// Latencies in logarithmic buckets (5 % wide, from 1 µs to about 3 minutes): fixed memory however long the demo
/// runs, percentiles within 5 %.
struct LatencyHistogram: Sendable {
    private static let growth = 1.05
    private static let count = 400
    private var buckets = [Int](repeating: 0, count: LatencyHistogram.count)
    private(set) var samples = 0

    mutating func record(seconds: Double) {
        let micros = max(seconds * 1_000_000, 1)
        let index = min(Int(log(micros) / log(Self.growth)), Self.count - 1)
        self.buckets[max(index, 0)] += 1
        self.samples += 1
    }

    /// The latency (in milliseconds) under which `quantile` of the samples fall; nil without samples.
    func percentileMilliseconds(_ quantile: Double) -> Double? {
        guard self.samples > 0 else { return nil }
        let rank = max(1, Int((quantile * Double(self.samples)).rounded(.up)))
        var seen = 0
        for (index, count) in self.buckets.enumerated() {
            seen += count
            if seen >= rank {
                // The bucket's geometric middle.
                return pow(Self.growth, Double(index) + 0.5) / 1000
            }
        }
        return nil
    }

    static func + (left: Self, right: Self) -> Self {
        var sum = left
        for index in 0..<Self.count { sum.buckets[index] += right.buckets[index] }
        sum.samples += right.samples
        return sum
    }
}

/// What one service answered over some time.
struct DemoTally: Sendable {
    var requests = 0
    /// 2xx answers.
    var successes = 0
    /// 403 answers with `x-weft-reason: rbac_denied` (an AuthorizationPolicy said no): not failures.
    var denied = 0
    var latency = LatencyHistogram()
    /// Catalog only: answers by version (`v1`, `v2`).
    var versions: [String: Int] = [:]

    var failures: Int { self.requests - self.successes - self.denied }

    /// Successes among the requests that were not denied, in percent; nil without any.
    var successPercent: Double? {
        let judged = self.requests - self.denied
        return judged > 0 ? Double(self.successes) * 100 / Double(judged) : nil
    }

    mutating func add(status: Int, denied: Bool, seconds: Double, version: String?) {
        self.requests += 1
        if denied {
            self.denied += 1
        } else if (200..<300).contains(status) {
            self.successes += 1
        }
        self.latency.record(seconds: seconds)
        if let version { self.versions[version, default: 0] += 1 }
    }
}

/// Every call the demo's clients made: totals since the traffic started, and the current one-second window.
/// The apps and the load generator record here (not the proxies: their request path takes no lock).
final class DemoStats: Sendable {
    private struct State {
        var total: [DemoService: DemoTally] = [:]
        var window: [DemoService: DemoTally] = [:]
    }

    private let state = Mutex(State())

    func record(_ service: DemoService, status: Int, denied: Bool, seconds: Double, version: String? = nil) {
        self.state.withLock { state in
            state.total[service, default: DemoTally()].add(
                status: status, denied: denied, seconds: seconds, version: version)
            state.window[service, default: DemoTally()].add(
                status: status, denied: denied, seconds: seconds, version: version)
        }
    }

    /// The window since the last call, and a new one started.
    func takeWindow() -> [DemoService: DemoTally] {
        self.state.withLock { state in
            defer { state.window = [:] }
            return state.window
        }
    }

    var totals: [DemoService: DemoTally] { self.state.withLock { $0.total } }
}
