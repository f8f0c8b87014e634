import ArgumentParser
import Foundation
import KubeModel
import ProxyConfig
import WeftCompiler
import WeftManifests

/// `weftctl compile -f PATH --proxy NAMESPACE/POD`: prints one proxy's config, the JSON the proxy reads.
struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the ProxyConfig one proxy gets from a folder of manifests, as JSON.",
        discussion: "The output is what `weft-proxy --config FILE` reads."
    )

    @Option(name: .shortAndLong, help: "A manifest file or a folder of them.")
    var filename: String

    @Option(help: "The proxy's pod, as NAMESPACE/POD.")
    var proxy: String

    func run() throws {
        let loaded = ManifestLoader().load(path: self.filename)
        for problem in loaded.problems where problem.severity == .error {
            FileHandle.standardError.write(Data("warning: \(problem)\n".utf8))
        }
        guard let key = ObjectKey(parsing: self.proxy) else {
            throw ValidationError("--proxy must be NAMESPACE/POD, got \"\(self.proxy)\"")
        }
        let result = WeftCompiler().compile(loaded.snapshot)
        guard let config = result.proxies[key.description] else {
            let known = result.proxies.keys.sorted()
            let hint =
                known.isEmpty
                ? "no pod in \(self.filename) has injection enabled (label the namespace weft.dev/inject=enabled)"
                : "proxies: \(known.joined(separator: ", "))"
            FileHandle.standardError.write(Data("error: no proxy \(key): \(hint)\n".utf8))
            throw ExitCode(1)
        }
        print(String(decoding: try config.encoded(), as: UTF8.self))
    }
}
