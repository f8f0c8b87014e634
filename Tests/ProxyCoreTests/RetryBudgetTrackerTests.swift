import ProxyConfig
import ProxyCore
import Testing

private let second: UInt64 = 1_000_000_000

@Suite("RetryBudgetTracker")
struct RetryBudgetTrackerTests {
    @Test("allows percent of requests plus the floor, and refuses beyond")
    func percentPlusFloor() {
        var budget = RetryBudgetTracker(RetryBudget(percent: 20, minRetriesPerSecond: 1))
        for _ in 0..<100 { budget.recordRequest(now: 0) }
        // 20% of 100 + 1/s × 10 s = 30.
        let granted = (0..<40).filter { _ in budget.tryRetry(now: 0) }.count
        #expect(granted == 30)
        #expect(budget.tryRetry(now: second / 2) == false)
        budget.recordRequest(now: second / 2)
        budget.recordRequest(now: second / 2)
        budget.recordRequest(now: second / 2)
        budget.recordRequest(now: second / 2)
        budget.recordRequest(now: second / 2)
        #expect(budget.tryRetry(now: second / 2) == true)  // 105 requests: 31 allowed
        #expect(budget.tryRetry(now: second / 2) == false)
    }

    @Test("the floor alone allows minRetriesPerSecond × 10 s without traffic")
    func floorOnly() {
        var budget = RetryBudgetTracker(RetryBudget(percent: 20, minRetriesPerSecond: 10))
        let granted = (0..<150).filter { _ in budget.tryRetry(now: 5 * second) }.count
        #expect(granted == 100)
        var none = RetryBudgetTracker(RetryBudget(percent: 0, minRetriesPerSecond: 0))
        #expect(none.tryRetry(now: 0) == false)
    }

    @Test("the window slides: old requests and retries expire after 10 s")
    func sliding() {
        var budget = RetryBudgetTracker(RetryBudget(percent: 50, minRetriesPerSecond: 0))
        for _ in 0..<10 { budget.recordRequest(now: 0) }
        for _ in 0..<10 { budget.recordRequest(now: 5 * second) }
        #expect((0..<20).filter { _ in budget.tryRetry(now: 5 * second) }.count == 10)
        // At 10 s the requests of second 0 expire; the retries of second 5 still count.
        #expect(budget.requestsInWindow == 20)
        #expect(budget.tryRetry(now: 10 * second) == false)
        #expect(budget.requestsInWindow == 10)
        #expect(budget.retriesInWindow == 10)
        // At 15 s everything has expired.
        #expect(budget.tryRetry(now: 15 * second) == false)
        #expect(budget.requestsInWindow == 0 && budget.retriesInWindow == 0)
        // A long gap clears every bucket at once.
        for _ in 0..<4 { budget.recordRequest(now: 1000 * second) }
        #expect(budget.tryRetry(now: 1000 * second) == true)
        #expect(budget.tryRetry(now: 1000 * second) == true)
        #expect(budget.tryRetry(now: 1000 * second) == false)
    }
}
