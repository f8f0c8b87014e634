import Foundation
public import KubeModel

/// One event of a watch stream, decoded.
public enum KubeWatchEvent<R: KubeResource>: Sendable {
    case added(R)
    case modified(R)
    case deleted(R)
    /// No object changed, but the server vouches that everything up to this version was sent: resume here.
    case bookmark(resourceVersion: String)
    /// The server ended the watch with an error; code 410 (`Expired`/`Gone`) means: list again.
    case error(meta.v1.Status)

    /// The resourceVersion to resume from after this event, if it carries one.
    public var resourceVersion: String? {
        switch self {
        case .added(let object), .modified(let object), .deleted(let object): object.metadata.resourceVersion
        case .bookmark(let version): version
        case .error: nil
        }
    }
}

/// The events of a watch, decoded line by line as chunks arrive: nothing is buffered beyond one line.
///
/// Built from any async sequence of byte chunks: the HTTP body in `KubeClient`, an array in tests.
public struct WatchEvents<R: KubeResource>: AsyncSequence {
    public typealias Element = KubeWatchEvent<R>

    private let makeChunks: () -> any AsyncIteratorProtocol<[UInt8], any Error>

    public init<Chunks: AsyncSequence>(chunks: Chunks) where Chunks.Element == [UInt8] {
        self.makeChunks = {
            var iterator = chunks.makeAsyncIterator()
            return AnyChunkIterator { try await iterator.next() }
        }
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(chunks: self.makeChunks())
    }

    public struct Iterator: AsyncIteratorProtocol {
        var chunks: any AsyncIteratorProtocol<[UInt8], any Error>
        var buffer: [UInt8] = []
        var finished = false

        /// Lines longer than this end the watch with an error rather than exhaust memory.
        static var maxLineBytes: Int { 64 << 20 }

        init(chunks: any AsyncIteratorProtocol<[UInt8], any Error>) {
            self.chunks = chunks
        }

        public mutating func next() async throws -> KubeWatchEvent<R>? {
            while true {
                if let newline = self.buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(self.buffer[..<newline])
                    self.buffer.removeSubrange(...newline)
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x0d }) { continue }
                    return try Self.decode(line)
                }
                if self.finished {
                    guard !self.buffer.isEmpty else { return nil }
                    let line = self.buffer
                    self.buffer = []
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x0d }) { return nil }
                    return try Self.decode(line)
                }
                guard let chunk = try await self.chunks.next(isolation: nil) else {
                    self.finished = true
                    continue
                }
                self.buffer.append(contentsOf: chunk)
                if self.buffer.count > Self.maxLineBytes {
                    throw KubeClientError.malformedWatchEvent("a watch event is longer than \(Self.maxLineBytes) bytes")
                }
            }
        }

        static func decode(_ line: [UInt8]) throws -> KubeWatchEvent<R> {
            let value: JSONValue
            do {
                value = try JSONValue.parse(Data(line))
            } catch {
                throw KubeClientError.malformedWatchEvent("not JSON: \(error)")
            }
            guard let type = value["type"]?.stringValue, let object = value["object"] else {
                throw KubeClientError.malformedWatchEvent("an event needs type and object")
            }
            do {
                switch type {
                case "ADDED": return .added(try JSONValueDecoder().decode(R.self, from: object))
                case "MODIFIED": return .modified(try JSONValueDecoder().decode(R.self, from: object))
                case "DELETED": return .deleted(try JSONValueDecoder().decode(R.self, from: object))
                case "BOOKMARK":
                    return .bookmark(resourceVersion: object["metadata"]?["resourceVersion"]?.stringValue ?? "")
                case "ERROR": return .error(try JSONValueDecoder().decode(meta.v1.Status.self, from: object))
                default: throw KubeClientError.malformedWatchEvent("unknown event type \"\(type)\"")
                }
            } catch let error as DecodingError {
                throw KubeClientError.malformedWatchEvent("\(type) \(R.kind): \(error)")
            }
        }
    }
}

/// Erases an iterator of byte chunks.
struct AnyChunkIterator: AsyncIteratorProtocol {
    let nextChunk: () async throws -> [UInt8]?

    mutating func next() async throws -> [UInt8]? {
        try await self.nextChunk()
    }
}
