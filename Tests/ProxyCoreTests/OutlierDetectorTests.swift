import ProxyConfig
import ProxyCore
import Testing

private let second: UInt64 = 1_000_000_000

private func detector(
    _ count: Int, consecutive5xx: Int = 3, gateway: Int = 0, base: Int = 30_000, maxPercent: Int = 50
) -> OutlierDetector {
    OutlierDetector(
        config: OutlierDetection(
            consecutive5xxErrors: consecutive5xx, consecutiveGatewayErrors: gateway, intervalMs: 10_000,
            baseEjectionTimeMs: base, maxEjectionPercent: maxPercent),
        endpointCount: count)
}

private func fail(_ detector: inout OutlierDetector, _ endpoint: Int, times: Int, status: Int = 500, now: UInt64 = 0)
    -> [OutlierDetector.Ejection?]
{
    (0..<times).map { _ in detector.record(.status(status), endpoint: endpoint, now: now) }
}

@Suite("OutlierDetector")
struct OutlierDetectorTests {
    @Test("consecutive 5xx eject at the threshold; a success resets the count")
    func consecutive5xx() {
        var d = detector(4)
        #expect(fail(&d, 0, times: 2) == [nil, nil])
        #expect(d.record(.status(200), endpoint: 0, now: 0) == nil)
        #expect(fail(&d, 0, times: 2) == [nil, nil])
        #expect(!d.isEjected(0, now: 0))
        let ejection = d.record(.status(503), endpoint: 0, now: 5 * second)
        #expect(ejection == OutlierDetector.Ejection(endpoint: 0, until: 35 * second, ejections: 1))
        #expect(d.isEjected(0, now: 5 * second))
        #expect(d.ejectedCount == 1)
        // 4xx are successes for outlier detection.
        #expect(fail(&d, 1, times: 2) == [nil, nil])
        #expect(d.record(.status(404), endpoint: 1, now: 0) == nil)
        #expect(fail(&d, 1, times: 2) == [nil, nil])
    }

    @Test("consecutive gateway errors count 502-504 and connect failures; a 500 breaks the run")
    func gatewayErrors() {
        var d = detector(4, consecutive5xx: 0, gateway: 3)
        #expect(d.record(.connectFailure, endpoint: 2, now: 0) == nil)
        #expect(d.record(.status(502), endpoint: 2, now: 0) == nil)
        #expect(d.record(.status(500), endpoint: 2, now: 0) == nil)
        #expect(d.record(.status(504), endpoint: 2, now: 0) == nil)
        #expect(d.record(.status(503), endpoint: 2, now: 0) == nil)
        #expect(d.record(.connectFailure, endpoint: 2, now: 0)?.endpoint == 2)
    }

    @Test("never ejects more than maxEjectionPercent, but always at least one when the percent is above 0")
    func maxPercent() {
        var d = detector(4, maxPercent: 50)
        #expect(fail(&d, 0, times: 3).last??.endpoint == 0)
        #expect(fail(&d, 1, times: 3).last??.endpoint == 1)
        #expect(fail(&d, 2, times: 3).last == .some(nil))
        #expect(d.ejectedCount == 2)

        var tiny = detector(3, maxPercent: 10)
        #expect(fail(&tiny, 0, times: 3).last??.endpoint == 0)
        #expect(fail(&tiny, 1, times: 3).last == .some(nil))

        var off = detector(3, maxPercent: 0)
        #expect(fail(&off, 0, times: 3).last == .some(nil))
    }

    @Test("ejected endpoints return when their time passes")
    func returnAfterTime() {
        var d = detector(4)
        _ = fail(&d, 0, times: 3, now: 0)
        _ = fail(&d, 1, times: 3, now: 10 * second)
        #expect(d.tick(now: 29 * second) == [])
        #expect(d.isEjected(0, now: 29 * second))
        #expect(!d.isEjected(0, now: 30 * second))
        #expect(d.tick(now: 30 * second) == [0])
        #expect(d.tick(now: 60 * second) == [1])
        #expect(d.ejectedCount == 0)
        // Outcomes reported for an ejected endpoint (panic mode) do not count.
        _ = fail(&d, 2, times: 3, now: 0)
        #expect(fail(&d, 2, times: 5, now: 1) == [nil, nil, nil, nil, nil])
    }

    @Test("each ejection lasts base × ejections, capped at 300 s; healthy intervals decay the multiplier")
    func backoffMultiplier() {
        var d = detector(2, base: 100_000)
        var now: UInt64 = 0
        var durations: [UInt64] = []
        for _ in 0..<4 {
            guard let ejection = fail(&d, 0, times: 3, now: now).last ?? nil else {
                Issue.record("expected an ejection")
                return
            }
            durations.append((ejection.until - now) / second)
            now = ejection.until
            #expect(d.tick(now: now) == [0])
        }
        #expect(durations == [100, 200, 300, 300])
        #expect(d.ejections(0) == 4)
        // One interval (10 s) healthy: the multiplier decays by one per interval.
        #expect(d.tick(now: now + 10 * second) == [])
        #expect(d.ejections(0) == 3)
        #expect(d.tick(now: now + 15 * second) == [])
        #expect(d.ejections(0) == 3)
        #expect(d.tick(now: now + 20 * second) == [])
        #expect(d.ejections(0) == 2)
        let next = fail(&d, 0, times: 3, now: now + 20 * second).last ?? nil
        #expect(next?.ejections == 3)
        #expect(next.map { ($0.until - (now + 20 * second)) / second } == 300)
    }

    @Test("unknown endpoints are ignored")
    func bounds() {
        var d = detector(1)
        #expect(d.record(.status(500), endpoint: 5, now: 0) == nil)
        #expect(!d.isEjected(-1, now: 0))
    }
}
