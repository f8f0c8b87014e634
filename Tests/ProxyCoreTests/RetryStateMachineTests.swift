import ProxyConfig
import ProxyCore
import Testing

private let ms: UInt64 = 1_000_000

private func policy(
    _ retryOn: [String], attempts: Int = 2, nonIdempotent: Bool = false, base: Int = 25, max: Int = 250
) -> CompiledRetryPolicy {
    CompiledRetryPolicy(
        RetryPolicy(
            attempts: attempts, perTryTimeoutMs: 500, retryOn: retryOn, retryNonIdempotent: nonIdempotent,
            backoffBaseMs: base, backoffMaxMs: max))
}

private func generousBudget() -> RetryBudgetTracker {
    RetryBudgetTracker(RetryBudget(percent: 100, minRetriesPerSecond: 1000))
}

/// Whether the first try's `outcome` is retried under `retryOn` for a GET.
private func retried(_ retryOn: [String], _ outcome: TryOutcome, method: String = "GET") -> Bool {
    var machine = RetryStateMachine(policy: policy(retryOn), method: method)
    var budget = generousBudget()
    var random = SeededRandomSource(seed: 3)
    if case .retry = machine.tryFinished(outcome, now: 0, budget: &budget, random: &random) { return true }
    return false
}

private func response(_ status: Int, grpc: Int? = nil) -> TryOutcome {
    .response(status: status, grpcStatus: grpc)
}

@Suite("RetryStateMachine")
struct RetryStateMachineTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var retryOn: [String]
        var outcome: TryOutcome
        var retry: Bool
        var testDescription: String { "\(self.retryOn) \(self.outcome) -> \(self.retry)" }
    }

    static let cases: [Case] = [
        Case(retryOn: ["5xx"], outcome: response(500), retry: true),
        Case(retryOn: ["5xx"], outcome: response(503), retry: true),
        Case(retryOn: ["5xx"], outcome: response(200), retry: false),
        Case(retryOn: ["5xx"], outcome: response(404), retry: false),
        Case(retryOn: ["5xx"], outcome: .reset, retry: true),
        Case(retryOn: ["5xx"], outcome: .connectFailure, retry: true),
        Case(retryOn: ["5xx"], outcome: .refusedStream, retry: true),
        Case(retryOn: ["5xx"], outcome: .perTryTimeout, retry: true),
        Case(retryOn: ["gateway-error"], outcome: response(500), retry: false),
        Case(retryOn: ["gateway-error"], outcome: response(502), retry: true),
        Case(retryOn: ["gateway-error"], outcome: response(503), retry: true),
        Case(retryOn: ["gateway-error"], outcome: response(504), retry: true),
        Case(retryOn: ["gateway-error"], outcome: .perTryTimeout, retry: true),
        Case(retryOn: ["gateway-error"], outcome: .reset, retry: false),
        Case(retryOn: ["reset"], outcome: .reset, retry: true),
        Case(retryOn: ["reset"], outcome: .perTryTimeout, retry: true),
        Case(retryOn: ["reset"], outcome: response(503), retry: false),
        Case(retryOn: ["reset"], outcome: .connectFailure, retry: false),
        Case(retryOn: ["connect-failure"], outcome: .connectFailure, retry: true),
        Case(retryOn: ["connect-failure"], outcome: .reset, retry: false),
        Case(retryOn: ["retriable-4xx"], outcome: response(409), retry: true),
        Case(retryOn: ["retriable-4xx"], outcome: response(400), retry: false),
        Case(retryOn: ["refused-stream"], outcome: .refusedStream, retry: true),
        Case(retryOn: ["refused-stream"], outcome: .reset, retry: false),
        Case(retryOn: ["429"], outcome: response(429), retry: true),
        Case(retryOn: ["429", "503"], outcome: response(503), retry: true),
        Case(retryOn: ["429"], outcome: response(500), retry: false),
        Case(retryOn: ["unavailable"], outcome: response(200, grpc: 14), retry: true),
        Case(retryOn: ["unavailable"], outcome: response(200, grpc: 13), retry: false),
        Case(retryOn: ["cancelled"], outcome: response(200, grpc: 1), retry: true),
        Case(retryOn: ["deadline-exceeded"], outcome: response(200, grpc: 4), retry: true),
        Case(retryOn: ["resource-exhausted"], outcome: response(200, grpc: 8), retry: true),
        Case(retryOn: ["internal"], outcome: response(200, grpc: 13), retry: true),
        Case(retryOn: ["internal"], outcome: response(200, grpc: 0), retry: false),
        Case(retryOn: ["internal"], outcome: response(200), retry: false),
        Case(retryOn: [], outcome: response(503), retry: false),
        Case(retryOn: ["bogus"], outcome: response(503), retry: false),
    ]

    @Test("retryOn conditions", arguments: cases)
    func conditions(_ test: Case) {
        #expect(retried(test.retryOn, test.outcome) == test.retry)
    }

    @Test("unknown tokens are kept for diagnostics and status codes parsed")
    func parsing() {
        let conditions = RetryConditions(["503", "bogus", "429", "unavailable"])
        #expect(conditions.statusCodes == [429, 503])
        #expect(conditions.unknownTokens == ["bogus"])
    }

    @Test("non-idempotent methods are not retried unless configured", arguments: ["POST", "PATCH", "CONNECT", "get"])
    func nonIdempotent(method: String) {
        #expect(!CompiledRetryPolicy.isIdempotent(method: method))
        var machine = RetryStateMachine(policy: policy(["5xx"]), method: method)
        var budget = generousBudget()
        var random = SeededRandomSource(seed: 1)
        #expect(machine.tryFinished(response(503), now: 0, budget: &budget, random: &random) == .done(.nonIdempotent))

        var allowed = RetryStateMachine(policy: policy(["5xx"], nonIdempotent: true), method: method)
        #expect(allowed.tryFinished(response(503), now: 0, budget: &budget, random: &random) != .done(.nonIdempotent))
    }

    @Test("idempotent methods are retried", arguments: ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"])
    func idempotent(method: String) {
        #expect(CompiledRetryPolicy.isIdempotent(method: method))
        #expect(retried(["5xx"], response(503), method: method))
    }

    @Test("a POST that never reached the application is retried: connect failure, refused stream")
    func postNeverSent() {
        #expect(retried(["5xx"], .connectFailure, method: "POST"))
        #expect(retried(["5xx"], .refusedStream, method: "POST"))
        #expect(!retried(["5xx"], .reset, method: "POST"))
    }

    @Test("transcript: retries until attempts are exhausted, then stays done")
    func transcript() {
        var machine = RetryStateMachine(policy: policy(["5xx"], attempts: 2), method: "GET")
        var budget = generousBudget()
        var random = SeededRandomSource(seed: 11)
        var actions: [RetryStateMachine.Action] = []
        for outcome in [response(503), .reset, response(502), response(200)] {
            actions.append(machine.tryFinished(outcome, now: 0, budget: &budget, random: &random))
        }
        guard actions.count == 4, case .retry = actions[0], case .retry = actions[1] else {
            Issue.record("unexpected transcript \(actions)")
            return
        }
        #expect(actions[2...] == [.done(.attemptsExhausted), .done(.attemptsExhausted)])
        #expect(machine.retries == 2)
        #expect(machine.perTryTimeoutNanos == 500 * ms)
    }

    @Test("success ends the request; no policy never retries")
    func successAndNoPolicy() {
        var machine = RetryStateMachine(policy: policy(["5xx"]), method: "GET")
        var budget = generousBudget()
        var random = SeededRandomSource(seed: 1)
        #expect(machine.tryFinished(response(200), now: 0, budget: &budget, random: &random) == .done(.notRetriable))
        var none = RetryStateMachine(policy: nil, method: "GET")
        #expect(none.tryFinished(response(503), now: 0, budget: &budget, random: &random) == .done(.noPolicy))
        #expect(none.perTryTimeoutNanos == nil)
    }

    @Test("the budget is respected")
    func budget() {
        var budget = RetryBudgetTracker(RetryBudget(percent: 0, minRetriesPerSecond: 0))
        var random = SeededRandomSource(seed: 1)
        var machine = RetryStateMachine(policy: policy(["5xx"]), method: "GET")
        #expect(machine.tryFinished(response(503), now: 0, budget: &budget, random: &random) == .done(.budgetExhausted))

        var small = RetryBudgetTracker(RetryBudget(percent: 0, minRetriesPerSecond: 0))
        for _ in 0..<10 { small.recordRequest(now: 0) }
        var one = RetryBudgetTracker(RetryBudget(percent: 10, minRetriesPerSecond: 0))
        for _ in 0..<10 { one.recordRequest(now: 0) }
        var second = RetryStateMachine(policy: policy(["5xx"], attempts: 5), method: "GET")
        guard case .retry = second.tryFinished(response(503), now: 0, budget: &one, random: &random) else {
            Issue.record("expected a retry")
            return
        }
        #expect(second.tryFinished(response(503), now: 0, budget: &one, random: &random) == .done(.budgetExhausted))
    }

    @Test("backoff is full jitter within the doubling ceiling, capped at max")
    func jitterBounds() {
        let compiled = policy(["5xx"], attempts: 6, base: 25, max: 250)
        let ceilings = (0..<6).map { RetryStateMachine.backoffCeiling(policy: compiled, retries: $0) }
        #expect(ceilings == [25, 50, 100, 200, 250, 250].map { $0 * ms })
        #expect(RetryStateMachine.backoffCeiling(policy: compiled, retries: 1000) == 250 * ms)

        var random = SeededRandomSource(seed: 99)
        var delays: [[UInt64]] = Array(repeating: [], count: 6)
        for _ in 0..<200 {
            var machine = RetryStateMachine(policy: compiled, method: "GET")
            var budget = generousBudget()
            for retry in 0..<6 {
                guard case .retry(let after) = machine.tryFinished(.reset, now: 0, budget: &budget, random: &random)
                else {
                    Issue.record("expected retry \(retry)")
                    return
                }
                delays[retry].append(after)
            }
        }
        for (retry, samples) in delays.enumerated() {
            #expect(samples.allSatisfy { $0 <= ceilings[retry] })
            // Full jitter: samples spread over the whole range, not clustered near the ceiling.
            #expect(samples.contains { $0 < ceilings[retry] / 4 })
            #expect(samples.contains { $0 > ceilings[retry] * 3 / 4 })
        }
    }
}
