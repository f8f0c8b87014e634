import ArgumentParser
import NIOConcurrencyHelpers

/// `weft-proxy [run] …` serves (the default subcommand, so `weft-proxy --config …` still runs the proxy);
/// `weft-proxy init …` installs the capture rules in the pod's network namespace.
struct WeftProxyMain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weft-proxy",
        abstract:
            "The Weft sidecar proxy (run, the default), its traffic capture setup (init) and the classic sidecar's "
            + "readiness hold (wait).",
        subcommands: [WeftProxyCommand.self, InitCommand.self, WaitCommand.self],
        defaultSubcommand: WeftProxyCommand.self
    )
}

/// The process's entry point: a synchronous `main` that runs the command on Swift's global executor and parks
/// the main thread on a lock until the command returns.
///
/// An `async` `main` on Linux ends its first turn in `dispatch_main()`, which takes the main thread away with
/// `pthread_exit`; glibc's forced unwind of that thread then reads the unwind tables of every frame on its
/// stack and leaves them, and the code pages around them, resident for the life of the proxy. A main thread
/// that waits instead keeps them out of memory (idle RSS, issue 10). The command runs detached from the main
/// actor, which `main` belongs to: the main queue is never drained here, and nothing in the proxy uses it.
@main
enum WeftProxyEntryPoint {
    static func main() {
        let finished = ConditionLock(value: false)
        Task.detached { await runCommand(finished) }  // awaited-before-return: main waits on `finished`
        finished.lock(whenValue: true)
        finished.unlock()
    }

    private static func runCommand(_ finished: ConditionLock<Bool>) async {
        await WeftProxyMain.main()
        finished.lock()
        finished.unlock(withValue: true)
    }
}
