import ArgumentParser

@main
struct Weftctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weftctl",
        abstract: "See and debug what the Weft mesh does.",
        subcommands: [
            DemoCommand.self, Analyze.self, Check.self, Compile.self, Inject.self, Install.self, Uninstall.self,
            ProxyStatusCommand.self,
            ProxyConfigCommand.self,
        ]
    )
}
