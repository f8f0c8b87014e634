import Testing

@testable import WeftProxy

/// `Spawn` runs iptables-save and iptables-restore for `weft-proxy init`; here it runs the shell and cat.
@Suite("Spawn: a program run to its end, with input and both outputs")
struct SpawnTests {
    @Test("200 KB through cat: more than a pipe holds, both ways at once, comes back whole")
    func largeInputAndOutput() throws {
        // cat writes its output while its input is still arriving; with both far over a pipe's 64 KiB, a
        // runner that wrote all input before reading any output would block forever.
        let input = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        let result = try Spawn.run("/bin/cat", [], input: input)
        #expect(result.status == 0)
        #expect(result.output == input)
        #expect(result.errors.isEmpty)
    }

    @Test("exit codes, standard error, a signal, and a program that reads nothing")
    func statusAndErrors() throws {
        let failed = try Spawn.run("/bin/sh", ["-c", "echo out; echo oops >&2; exit 3"], input: [])
        #expect(failed.status == 3)
        #expect(String(decoding: failed.output, as: UTF8.self) == "out\n")
        #expect(String(decoding: failed.errors, as: UTF8.self) == "oops\n")

        let killed = try Spawn.run("/bin/sh", ["-c", "kill -9 $$"], input: [])
        #expect(killed.status == 128 + 9)

        // The input is refused (EPIPE) once the program has exited: an answer, not a hang or a SIGPIPE.
        let deaf = try Spawn.run("/bin/sh", ["-c", "exec 0<&-; exit 0"], input: Array(repeating: 65, count: 1 << 20))
        #expect(deaf.status == 0)
    }

    @Test("a program that is not there is an error naming it")
    func missingProgram() {
        #expect {
            _ = try Spawn.run("/nonexistent/iptables-restore", [], input: [])
        } throws: { error in
            "\(error)".contains("/nonexistent/iptables-restore")
        }
    }
}
