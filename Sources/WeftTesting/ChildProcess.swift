import Dispatch
import Foundation
import Synchronization

/// What a finished child process printed.
public struct ChildProcessResult: Sendable {
    /// Its exit status (the signal number when a signal ended it).
    public var status: Int32
    public var stdout: Data
    public var stderr: Data
    /// Whether the time limit ended it (then `status` is that of a SIGKILL).
    public var timedOut: Bool

    public var stdoutText: String { String(decoding: self.stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: self.stderr, as: UTF8.self) }
}

/// Runs test helpers (curl, openssl, ip, python) to completion, never for longer than a time limit.
///
/// Three things make a naive `Process` + `readDataToEndOfFile()` hang a whole test run (it did: CI ran out of its
/// 90 minutes on one): a grandchild (a shell pipeline's second command, a daemon) keeps the pipe open after the
/// child is killed, so EOF never comes; a child that fills the pipe not being read (stderr while stdout is read)
/// blocks for good; and children inherit the test process's blocked signal mask. So each child runs in a process
/// group of its own (through a one-line `exec` that also clears the mask), both pipes are read at once, the time
/// limit kills the whole group, and a last watchdog returns what was read even if some descendant escaped the
/// group and still holds a pipe.
public enum ChildProcess {
    /// Runs `arguments` (the first looked up on PATH) with standard input from /dev/null.
    public static func run(
        _ arguments: [String], timeout: Duration = .seconds(20), mergeStandardError: Bool = false
    ) async throws -> ChildProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            [
                "python3", "-c",
                "import os, signal, sys; os.setpgid(0, 0); signal.pthread_sigmask(signal.SIG_SETMASK, []); "
                    + "os.execvp(sys.argv[1], sys.argv[1:])",
            ] + arguments
        let stdout = Pipe()
        let stderr = mergeStandardError ? stdout : Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let pid = process.processIdentifier
        let state = RunState()
        let limit = DispatchTimeInterval.milliseconds(Int(timeout.components.seconds * 1000))
        DispatchQueue.global().asyncAfter(deadline: .now() + limit) {
            guard !state.finished.load(ordering: .acquiring) else { return }
            state.timedOut.store(true, ordering: .releasing)
            // The group first (the wrapper made pid its leader), then the child itself in case it had not got
            // that far.
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
        }
        return await withCheckedContinuation { (continuation: CheckedContinuation<ChildProcessResult, Never>) in
            // Each blocking read and wait on a thread of its own: on Dispatch's global queue they took its few
            // threads (about one per core), and under a full test run an `openssl` child that had exited was
            // reported as hung because its readers never got a thread.
            let readers = DispatchGroup()
            readers.enter()
            Thread.detachNewThread {
                let data = stdout.fileHandleForReading.readDataToEndOfFile()
                state.output.withLock { $0.stdout = data }
                readers.leave()
            }
            if !mergeStandardError {
                readers.enter()
                Thread.detachNewThread {
                    let data = stderr.fileHandleForReading.readDataToEndOfFile()
                    state.output.withLock { $0.stderr = data }
                    readers.leave()
                }
            }
            let finish: @Sendable (Bool) -> Void = { exited in
                guard state.resume() else { return }
                let output = state.output.withLock { $0 }
                let status = exited ? process.terminationStatus : SIGKILL
                var stderr = output.stderr
                if !exited {
                    stderr += Data("\n[ChildProcess: a descendant still held the output open; gave up]".utf8)
                }
                continuation.resume(
                    returning: ChildProcessResult(
                        status: status, stdout: output.stdout, stderr: stderr,
                        timedOut: state.timedOut.load(ordering: .acquiring)))
            }
            Thread.detachNewThread {
                readers.wait()
                process.waitUntilExit()
                state.finished.store(true, ordering: .releasing)
                finish(true)
            }
            // Past the limit and a grace period, a pipe still open belongs to a descendant outside the group.
            DispatchQueue.global().asyncAfter(deadline: .now() + limit + .seconds(5)) {
                guard !state.finished.load(ordering: .acquiring) else { return }
                kill(pid, SIGKILL)
                finish(!process.isRunning)
            }
        }
    }
}

private final class RunState: Sendable {
    struct Output {
        var stdout = Data()
        var stderr = Data()
    }

    let output = Mutex(Output())
    let finished = Atomic<Bool>(false)
    let timedOut = Atomic<Bool>(false)
    private let resumed = Atomic<Bool>(false)

    /// True for the first caller only.
    func resume() -> Bool {
        !self.resumed.exchange(true, ordering: .acquiringAndReleasing)
    }
}
