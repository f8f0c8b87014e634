import Testing

@testable import WeftController

@Suite("Debounce")
struct DebounceStateMachineTests {
    let start = ContinuousClock.now

    @Test("nothing pending: idle")
    func idle() {
        var machine = DebounceStateMachine()
        #expect(machine.poll(at: self.start) == .idle)
    }

    @Test("one change compiles after the quiet period")
    func quietPeriod() {
        var machine = DebounceStateMachine(quiet: .milliseconds(50), maxDelay: .seconds(1))
        machine.changed(at: self.start)
        #expect(
            machine.poll(at: self.start.advanced(by: .milliseconds(10)))
                == .wait(until: self.start.advanced(by: .milliseconds(50))))
        #expect(machine.poll(at: self.start.advanced(by: .milliseconds(50))) == .compile)
        #expect(machine.poll(at: self.start.advanced(by: .milliseconds(60))) == .idle)
    }

    @Test("a steady stream of changes still compiles within the maximum delay")
    func maximumDelay() {
        var machine = DebounceStateMachine(quiet: .milliseconds(50), maxDelay: .seconds(1))
        var now = self.start
        var compiledAt: Duration?
        for step in 1...100 {
            machine.changed(at: now)
            now = self.start.advanced(by: .milliseconds(40 * step))
            if machine.poll(at: now) == .compile {
                compiledAt = now - self.start
                break
            }
        }
        #expect(compiledAt == .milliseconds(1000))
    }

    @Test("a change during the wait pushes the compile back")
    func changeDuringWait() {
        var machine = DebounceStateMachine(quiet: .milliseconds(50), maxDelay: .seconds(1))
        machine.changed(at: self.start)
        machine.changed(at: self.start.advanced(by: .milliseconds(30)))
        #expect(
            machine.poll(at: self.start.advanced(by: .milliseconds(50)))
                == .wait(until: self.start.advanced(by: .milliseconds(80))))
        #expect(machine.poll(at: self.start.advanced(by: .milliseconds(80))) == .compile)
    }
}
