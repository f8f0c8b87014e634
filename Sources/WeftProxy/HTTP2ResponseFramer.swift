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
            block.add(name: ":status", value: Self.statusValue(status.code))
        }
        for (name, value) in headers where !HTTP1Head.withUTF8(name, HTTP2RequestBlock.isConnectionSpecific) {
            block.add(name: Self.lowercased(name), value: value)
        }
        return block
    }

    /// `name` with ASCII capitals made small (itself, not copied, when it has none; a literal for the names
    /// servers send on most responses, which HTTP/1.1 servers capitalize).
    static func lowercased(_ name: String) -> String {
        HTTP1Head.withUTF8(name) { bytes in
            guard let first = bytes.firstIndex(where: { $0 &- 0x41 < 26 }) else {
                return name
            }
            if let common = Self.common(bytes) {
                return common
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

    /// `:status`'s value: a literal for the common codes (formatting an integer costs more than the rest of a
    /// small head's fields).
    static func statusValue(_ code: UInt) -> String {
        switch code {
        case 200: "200"
        case 201: "201"
        case 204: "204"
        case 206: "206"
        case 301: "301"
        case 302: "302"
        case 304: "304"
        case 400: "400"
        case 401: "401"
        case 403: "403"
        case 404: "404"
        case 500: "500"
        case 502: "502"
        case 503: "503"
        case 504: "504"
        default: String(code)
        }
    }

    /// The lowercase literal of a common response field name, ignoring ASCII case.
    private static func common(_ name: UnsafeBufferPointer<UInt8>) -> String? {
        func matches(_ lowercase: StaticString) -> Bool {
            HTTP2RequestBlock.equalsIgnoringCase(name, lowercase)
        }
        switch name.count {
        case 4 where matches("date"): return "date"
        case 4 where matches("etag"): return "etag"
        case 4 where matches("vary"): return "vary"
        case 6 where matches("server"): return "server"
        case 8 where matches("location"): return "location"
        case 10 where matches("set-cookie"): return "set-cookie"
        case 12 where matches("content-type"): return "content-type"
        case 13 where matches("cache-control"): return "cache-control"
        case 13 where matches("last-modified"): return "last-modified"
        case 13 where matches("accept-ranges"): return "accept-ranges"
        case 14 where matches("content-length"): return "content-length"
        case 16 where matches("content-encoding"): return "content-encoding"
        default: return nil
        }
    }
}
