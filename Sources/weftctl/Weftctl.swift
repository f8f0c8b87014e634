import ArgumentParser

@main
struct Weftctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weftctl",
        abstract: "See and debug what the Weft mesh does.",
        subcommands: [Analyze.self, Compile.self]
    )
}
