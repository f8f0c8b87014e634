import Testing
import WeftPush

@Suite("Push stream state machine")
struct PushStreamStateMachineTests {
    typealias Machine = PushStreamStateMachine<[UInt8]>
    static func config(_ version: String) -> Machine.Config {
        Machine.Config(version: version, payload: Array(version.utf8))
    }

    @Test("A new proxy gets the full config, then each new version after its ACK")
    func firstConfigThenUpdates() {
        var machine = Machine()
        #expect(machine.hello(running: "") == .none)
        #expect(machine.desire(Self.config("v1")) == .send(Self.config("v1"), nonce: "1"))
        #expect(machine.acknowledged(version: "v1", nonce: "1") == .none)
        #expect(machine.running == "v1")
        #expect(machine.desire(Self.config("v1")) == .none)
        #expect(machine.desire(Self.config("v2")) == .send(Self.config("v2"), nonce: "2"))
    }

    @Test("A slow proxy gets the newest version, not a queue of stale ones")
    func newestWins() {
        var machine = Machine()
        _ = machine.hello(running: "")
        #expect(machine.desire(Self.config("v1")) == .send(Self.config("v1"), nonce: "1"))
        #expect(machine.desire(Self.config("v2")) == .none)
        #expect(machine.desire(Self.config("v3")) == .none)
        #expect(machine.acknowledged(version: "v1", nonce: "1") == .send(Self.config("v3"), nonce: "2"))
        #expect(machine.acknowledged(version: "v3", nonce: "2") == .none)
        #expect(machine.running == "v3")
    }

    @Test("A reconnecting proxy that runs the current version gets nothing; one that runs an older one gets the new")
    func resume() {
        // Nothing is sent before the proxy's hello says what it runs.
        var current = Machine()
        #expect(current.desire(Self.config("v7")) == .none)
        #expect(current.hello(running: "v7") == .none)
        #expect(current.running == "v7")
        var behind = Machine()
        #expect(behind.desire(Self.config("v8")) == .none)
        #expect(behind.hello(running: "v7") == .send(Self.config("v8"), nonce: "1"))
    }

    @Test("A NACK keeps the running version; the refused version is not resent, a newer one is")
    func nack() {
        var machine = Machine()
        _ = machine.hello(running: "v1")
        #expect(machine.desire(Self.config("bad")) == .send(Self.config("bad"), nonce: "1"))
        #expect(machine.refused(version: "bad", nonce: "1", error: "route matcher") == .none)
        #expect(machine.running == "v1")
        #expect(machine.refused?.error == "route matcher")
        #expect(machine.desire(Self.config("bad")) == .none)
        #expect(machine.desire(Self.config("v2")) == .send(Self.config("v2"), nonce: "2"))
        #expect(machine.acknowledged(version: "v2", nonce: "2") == .none)
        #expect(machine.refused == nil)
    }

    @Test("Stale or unknown answers change nothing", arguments: [("v1", "9"), ("v2", "1"), ("", "")])
    func staleAnswers(version: String, nonce: String) {
        var machine = Machine()
        _ = machine.hello(running: "")
        _ = machine.desire(Self.config("v1"))
        #expect(machine.acknowledged(version: version, nonce: nonce) == .none)
        #expect(machine.refused(version: version, nonce: nonce, error: "x") == .none)
        #expect(machine.inFlight?.nonce == "1")
        #expect(machine.running == nil)
    }
}
