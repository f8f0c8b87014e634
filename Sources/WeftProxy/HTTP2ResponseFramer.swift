import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// How one downstream HTTP/2 stream's response parts become frames (`HTTP2ServerStream` writes what it returns).
/// As NIO's `HTTP2FramePayloadToHTTP1ServerCodec`, except that a response's last body chunk and its end go out as
/// one DATA frame with END_STREAM, as an HTTP/2 server sends them, instead of the chunk and then an empty DATA
/// frame: one frame per response fewer to build, encode and write (a third of a small response's frames), and one
/// fewer for the client to read.
///
/// The newest body chunk is held until the next response part or the next flush, whichever comes first: a streamed
/// body (a gRPC server stream, server-sent events) is not delayed, since every flush sends what is held.
///
/// Response heads and trailers become header blocks in one pass (NIO's codec copies a head into a new
/// `HTTPHeaders` with `:status` first, then into an `HPACKHeaders` with every name lowercased through Unicode case
/// mapping): names lowercased as ASCII (an HTTP/1.1 field name is a token) and connection-specific fields dropped,
/// as NIO's normalization does. The heads that come here have no hop-by-hop fields already
/// (`DownstreamResponse`), so the fields a `Connection` field would name are gone with it.
struct HTTP2ResponseFramer {
    /// The newest body chunk, not yet framed.
    private var held: IOData?

    /// The frames `part` makes now, in order: the chunk held before it (if the part lets it go), then the part's
    /// own frame (none for a body chunk, which is held).
    mutating func frames(
        for part: HTTPServerResponsePart
    ) -> (
        first: HTTP2Frame.FramePayload?, second: HTTP2Frame.FramePayload?
    ) {
        switch part {
        case .head(let head):
            let block = Self.block(status: head.status, head.headers)
            return (self.flush(), .headers(.init(headers: block)))
        case .body(let data):
            let before = self.flush()
            self.held = data
            return (before, nil)
        case .end(nil):
            let data = self.held ?? .byteBuffer(ByteBuffer())
            self.held = nil
            return (.data(.init(data: data, endStream: true)), nil)
        case .end(let trailers?):
            let block = Self.block(status: nil, trailers)
            return (self.flush(), .headers(.init(headers: block, endStream: true)))
        }
    }

    /// At a flush (or a reset): the held chunk's DATA frame, if one is held.
    mutating func flush() -> HTTP2Frame.FramePayload? {
        guard let held = self.held else {
            return nil
        }
        self.held = nil
        return .data(.init(data: held))
    }

    /// Drops the held chunk (the stream is gone).
    mutating func drop() {
        self.held = nil
    }

    /// A response head's fields (with `:status` first) or trailers as an HTTP/2 header block.
    static func block(status: HTTPResponseStatus?, _ headers: HTTPHeaders) -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(headers.count + 1)
        if let status {
            block.add(name: ":status", value: String(status.code))
        }
        for (name, value) in headers where !HTTP1Head.withUTF8(name, HTTP2RequestBlock.isConnectionSpecific) {
            block.add(name: Self.lowercased(name), value: value)
        }
        return block
    }

    /// `name` with ASCII capitals made small (itself, not copied, when it has none).
    static func lowercased(_ name: String) -> String {
        HTTP1Head.withUTF8(name) { bytes in
            guard let first = bytes.firstIndex(where: { $0 &- 0x41 < 26 }) else {
                return name
            }
            return String(unsafeUninitializedCapacity: bytes.count) { out in
                for index in 0..<bytes.count {
                    let byte = bytes[index]
                    out[index] = index >= first && byte &- 0x41 < 26 ? byte | 0x20 : byte
                }
                return bytes.count
            }
        }
    }
}
