import ArgumentParser

/// `weft-proxy [run] …` serves (the default subcommand, so `weft-proxy --config …` still runs the proxy);
/// `weft-proxy init …` installs the capture rules in the pod's network namespace.
@main
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
