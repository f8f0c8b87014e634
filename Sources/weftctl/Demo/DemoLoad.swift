import ServiceLifecycle
import Synchronization

/// The load generator: `GET /` on the frontend, and every 20th request `GET /admin/orders` (which the
/// AuthorizationPolicy denies), through the load generator's own proxy, at a steady rate. Bounded by a number of
/// requests and a duration when given; at most `concurrency` requests in flight.
struct DemoLoad: Sendable {
    var rate: Double
    var requests: Int?
    var duration: Duration?
    var concurrency = 8

    /// One request in this many goes to the denied path.
    static let deniedEvery = 20

    static func path(of index: Int) -> String {
        index % Self.deniedEvery == Self.deniedEvery - 1 ? "/admin/orders" : "/"
    }

    /// Sends until the count or the duration is reached, or a graceful shutdown; returns the requests answered.
    func run(port: @escaping @Sendable () -> Int?, stats: DemoStats) async -> Int {
        let next = LoadCounter()
        let answered = LoadCounter()
        let clock = ContinuousClock()
        let start = clock.now
        let interval = Duration.seconds(1 / max(self.rate, 0.01))
        await withDiscardingTaskGroup { group in
            for _ in 0..<max(1, self.concurrency) {
                group.addTask {
                    while !Task.isCancelled && !Task.isShuttingDownGracefully {
                        let index = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                        if let requests = self.requests, index >= requests { return }
                        let due = start + interval * index
                        if let duration = self.duration, due - start >= duration { return }
                        if due > clock.now {
                            do {
                                try await Task.sleep(until: due, clock: clock)
                            } catch {
                                return
                            }
                        }
                        if Task.isShuttingDownGracefully { return }
                        let answer = await DemoApps.call(port: port(), host: "frontend", path: Self.path(of: index))
                        // A request cut by the shutdown is not the mesh's failure.
                        if Task.isCancelled { return }
                        stats.record(.frontend, status: answer.status, denied: answer.denied, seconds: answer.seconds)
                        answered.value.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        return answered.value.load(ordering: .relaxed)
    }
}

private final class LoadCounter: Sendable {
    let value = Atomic<Int>(0)
}
