import Foundation
import KubeClient
import Logging

extension FakeAPIServer {
    /// Runs `body` with this server and a `KubeClient` for it, then shuts both down, on every path.
    ///
    /// A test that throws before it shuts its client down crashes the whole test process: AsyncHTTPClient checks
    /// in its deinit that it was shut down. One failing expectation would take every other test with it.
    /// `configure` adjusts the client's configuration (its server is this one); `requestTimeout` as `KubeClient`'s.
    public func withClient(
        logger: Logger = Logger(label: "weft.test"), configure: (inout KubeConfiguration) -> Void = { _ in },
        requestTimeout: Duration = .seconds(60), _ body: (FakeAPIServer, KubeClient) async throws -> Void
    ) async throws {
        let client: KubeClient
        do {
            guard let url = URL(string: self.baseURL) else { throw FakeAPIClientError(baseURL: self.baseURL) }
            var configuration = KubeConfiguration(server: url)
            configure(&configuration)
            client = try KubeClient(configuration: configuration, logger: logger, requestTimeout: requestTimeout)
        } catch {
            try? await self.shutdown()
            throw error
        }
        do {
            try await body(self, client)
        } catch {
            try? await client.shutdown()
            try? await self.shutdown()
            throw error
        }
        try await client.shutdown()
        try await self.shutdown()
    }
}

/// The server's own base URL did not parse: a bug in the fake, not in the test.
struct FakeAPIClientError: Error, CustomStringConvertible {
    let baseURL: String
    var description: String { "the fake API server's base URL \(self.baseURL) is not a URL" }
}
