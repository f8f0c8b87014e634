import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

@testable import WeftProxy

/// `HTTP2RequestBlock` against NIOHTTP2's own header-block validation, which the downstream connection turns off in
/// its favour: the same verdict on every generated block, as a request's head and as its trailers. (End to end,
/// `ProxySmugglingTests` sends RFC 9113's forbidden blocks through the proxy and expects a reset or a 400 with
/// nothing upstream.)
@Suite("HTTP/2 request header blocks: Weft's check and NIOHTTP2's agree")
struct HTTP2RequestBlockTests {
    /// NIOHTTP2's verdict: a server connection with validation on (content-length checks off: not compared here)
    /// receives `block` from a client that validates nothing, as the head of a new stream or, after a valid head,
    /// as its trailers. True when the server delivered the block, false when it refused it.
    static func nioAccepts(_ block: [(String, String)], asTrailers: Bool) throws -> Bool {
        let client = EmbeddedChannel(
            handler: NIOHTTP2Handler(
                mode: .client, initialSettings: nioDefaultSettings, headerBlockValidation: .disabled,
                contentLengthValidation: .disabled))
        let server = EmbeddedChannel(
            handler: NIOHTTP2Handler(
                mode: .server, initialSettings: nioDefaultSettings, headerBlockValidation: .enabled,
                contentLengthValidation: .disabled))
        defer {
            _ = try? client.finish(acceptAlreadyClosed: true)
            _ = try? server.finish(acceptAlreadyClosed: true)
        }
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        var refused = false
        func shuttle() {
            for _ in 0..<4 {
                while let bytes = try? client.readOutbound(as: IOData.self) {
                    guard case .byteBuffer(let buffer) = bytes else { continue }
                    do { try server.writeInbound(buffer) } catch { refused = true }
                }
                while let bytes = try? server.readOutbound(as: IOData.self) {
                    guard case .byteBuffer(let buffer) = bytes else { continue }
                    _ = try? client.writeInbound(buffer)
                }
            }
        }
        shuttle()
        let stream = HTTP2StreamID(1)
        if asTrailers {
            let head = HPACKHeaders([(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/")])
            client.writeAndFlush(HTTP2Frame(streamID: stream, payload: .headers(.init(headers: head))), promise: nil)
            shuttle()
        }
        client.writeAndFlush(
            HTTP2Frame(streamID: stream, payload: .headers(.init(headers: HPACKHeaders(block), endStream: true))),
            promise: nil)
        shuttle()
        var delivered = 0
        while let frame = try? server.readInbound(as: HTTP2Frame.self) {
            if frame.streamID == stream, case .headers = frame.payload {
                delivered += 1
            }
        }
        return !refused && delivered == (asTrailers ? 2 : 1)
    }

    /// A deterministic generator (SplitMix64): the same blocks on every run.
    struct Generator {
        var state: UInt64

        mutating func next() -> UInt64 {
            self.state &+= 0x9E37_79B9_7F4A_7C15
            var z = self.state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        mutating func below(_ bound: Int) -> Int { Int(self.next() % UInt64(bound)) }

        mutating func pick<T>(_ items: [T]) -> T { items[self.below(items.count)] }
    }

    static let base: [(String, String)] = [
        (":method", "GET"), (":scheme", "http"), (":authority", "catalog"), (":path", "/a?b=c"),
        ("accept", "*/*"), ("x-request-id", "abc"),
    ]

    static let extraFields: [(String, String)] = [
        ("connection", "close"), ("keep-alive", "5"), ("proxy-connection", "x"), ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"), ("te", "trailers"), ("te", "gzip"), ("te", "Trailers"), (":status", "200"),
        (":protocol", "websocket"), (":unknown", "1"), (":path", ""), (":method", "CONNECT"), (":authority", "b"),
        (":scheme", "https"), ("x-upper", "ok"), ("X-Upper", "no"), ("x y", "space"), ("", "empty"),
        ("x\u{7F}", "del"), ("x-empty", ""), ("grpc-timeout", "1S"), ("content-type", "application/grpc"),
        ("x-utf8", "caf\u{E9}"), ("upgrade-insecure-requests", "1"), ("tes", "gzip"), ("connections", "x"),
    ]

    static let badBytes = ["\u{0}", "\n", "\r", " ", "\t", "\u{1}", "\u{7F}", "\u{E9}", ":"]

    /// `base` with one to three of: a field dropped, doubled, moved, uppercased (an `x-` one), emptied, given a bad
    /// byte, or one of `extraFields` added at a random place; or the method made CONNECT.
    static func mutated(_ generator: inout Generator) -> [(String, String)] {
        var block = Self.base
        for _ in 0...generator.below(3) {
            let index = block.isEmpty ? 0 : generator.below(block.count)
            switch generator.below(8) {
            case 0 where !block.isEmpty:
                block.remove(at: index)
            case 1 where !block.isEmpty:
                block.insert(block[index], at: generator.below(block.count + 1))
            case 2 where block.count > 1:
                block.swapAt(index, generator.below(block.count))
            case 3 where !block.isEmpty && block[index].0.hasPrefix("x-"):
                // Only names outside HPACK's static table: NIOHTTP2's encoder finds those (":method", "accept")
                // there whatever their case, so the server would see them lowercase.
                block[index].0 = block[index].0.uppercased()
            case 4 where !block.isEmpty:
                let value = block[index].1
                let at = generator.below(value.count + 1)
                let cut = value.index(value.startIndex, offsetBy: at)
                block[index].1 = String(value[..<cut]) + generator.pick(Self.badBytes) + String(value[cut...])
            case 5 where !block.isEmpty:
                block[index].1 = ""
            case 6:
                block = block.map { $0.0 == ":method" ? ($0.0, "CONNECT") : $0 }
            default:
                block.insert(generator.pick(Self.extraFields), at: generator.below(block.count + 1))
            }
        }
        return block
    }

    @Test("the base block and each extra field alone: the same verdict as NIOHTTP2's, head and trailers")
    func singleChanges() throws {
        var blocks = [Self.base]
        for field in Self.extraFields {
            blocks.append(Self.base + [field])
            blocks.append(Array(Self.base.prefix(4)) + [field] + Self.base.dropFirst(4))
        }
        blocks.append([(":method", "CONNECT"), (":authority", "catalog:443")])
        blocks.append([(":method", "CONNECT"), (":authority", "catalog:443"), (":path", "/")])
        blocks.append([(":method", "CONNECT"), (":scheme", "http")])
        var accepted = 0
        for block in blocks {
            for asTrailers in [false, true] {
                let trailerBlock = asTrailers ? block.filter { !$0.0.hasPrefix(":") || $0.0 == ":status" } : block
                let weft = HTTP2RequestBlock.violation(in: HPACKHeaders(trailerBlock), isTrailers: asTrailers)
                let nio = try Self.nioAccepts(trailerBlock, asTrailers: asTrailers)
                #expect(
                    (weft == nil) == nio,
                    "\(asTrailers ? "trailers" : "head") \(trailerBlock): weft \(weft ?? "accepts"), NIOHTTP2 \(nio ? "accepts" : "refuses")"
                )
                accepted += nio ? 1 : 0
            }
        }
        // The corpus holds both kinds (a check that refused, or accepted, everything would fail above; this says
        // the comparison itself saw both).
        #expect(accepted > 10 && accepted < blocks.count * 2 - 10)
    }

    @Test("500 generated blocks: the same verdict as NIOHTTP2's, head and trailers")
    func generatedBlocks() throws {
        var generator = Generator(state: 0x5EED_0F_B10C)
        var verdicts = (accepted: 0, refused: 0)
        for _ in 0..<500 {
            let block = Self.mutated(&generator)
            let asTrailers = generator.below(4) == 0
            let weft = HTTP2RequestBlock.violation(in: HPACKHeaders(block), isTrailers: asTrailers)
            let nio = try Self.nioAccepts(block, asTrailers: asTrailers)
            #expect(
                (weft == nil) == nio,
                "\(asTrailers ? "trailers" : "head") \(block): weft \(weft ?? "accepts"), NIOHTTP2 \(nio ? "accepts" : "refuses")"
            )
            if nio { verdicts.accepted += 1 } else { verdicts.refused += 1 }
        }
        #expect(verdicts.accepted > 50 && verdicts.refused > 50, "\(verdicts)")
    }
}
