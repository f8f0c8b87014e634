import Logging
import ServiceLifecycle
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One request as the access log records it.
struct AccessLogEntry {
    var direction: ProxyDirection
    var method: String
    var authority: String
    var path: String
    var protocolVersion: String
    var status: Int
    var reason: String
    var upstream: String?
    var cluster: String?
    var tries: Int
    var requestBytes: Int
    var responseBytes: Int
    var durationMicros: Int64
    var traceparent: String?

    /// One JSON object on one line. `start` is wall-clock time in ISO 8601, computed from the monotonic
    /// duration only when the line is written.
    func json(end: Date) -> String {
        var out = "{"
        out += "\"time\":\(jsonQuoted(end.formatted(.iso8601)))"
        out += ",\"direction\":\"\(self.direction.rawValue)\""
        out += ",\"method\":\(jsonQuoted(self.method))"
        out += ",\"authority\":\(jsonQuoted(self.authority))"
        out += ",\"path\":\(jsonQuoted(self.path))"
        out += ",\"protocol\":\(jsonQuoted(self.protocolVersion))"
        out += ",\"status\":\(self.status)"
        out += ",\"reason\":\(jsonQuoted(self.reason))"
        out += ",\"upstream\":\(self.upstream.map(jsonQuoted) ?? "null")"
        out += ",\"cluster\":\(self.cluster.map(jsonQuoted) ?? "null")"
        out += ",\"tries\":\(self.tries)"
        out += ",\"request_bytes\":\(self.requestBytes)"
        out += ",\"response_bytes\":\(self.responseBytes)"
        out += ",\"duration_us\":\(self.durationMicros)"
        out += ",\"traceparent\":\(self.traceparent.map(jsonQuoted) ?? "null")"
        return out + "}"
    }
}

/// The JSON access log (off by default): entries are queued by the request path (one short lock, no I/O) and
/// written in batches every 100 ms, or at shutdown, to standard output or a file.
public final class AccessLog: Service {
    private struct Queued {
        var entry: AccessLogEntry
        var end: Date
    }

    private let queue = Mutex<[Queued]>([])
    private let path: String?
    private let logger: Logger

    /// `path` nil or `-`: standard output.
    public init(path: String?, logger: Logger) {
        self.path = path == "-" ? nil : path
        self.logger = logger
    }

    func log(_ entry: AccessLogEntry) {
        let queued = Queued(entry: entry, end: Date())
        self.queue.withLock { $0.append(queued) }
    }

    public func run() async throws {
        let fd: Int32
        if let path = self.path {
            fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                self.logger.error(
                    "cannot open the access log file",
                    metadata: ["path": "\(path)", "error": "\(errnoText())"])
                return
            }
        } else {
            fd = STDOUT_FILENO
        }
        defer { if fd != STDOUT_FILENO { close(fd) } }
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: .milliseconds(100))
            self.flush(to: fd)
        }
        self.flush(to: fd)
    }

    private func flush(to fd: Int32) {
        let batch = self.queue.withLock { queue -> [Queued] in
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            return batch
        }
        guard !batch.isEmpty else {
            return
        }
        var text = ""
        for queued in batch {
            text += queued.entry.json(end: queued.end)
            text += "\n"
        }
        if let failure = writeAll(fd, Array(text.utf8)) {
            // A full disk or a closed pipe: the batch is dropped, not retried forever.
            self.logger.warning(
                "access log write failed; entries dropped",
                metadata: ["entries": "\(batch.count)", "error": "\(errnoText(failure))"])
        }
    }
}

/// `value` as a JSON string literal.
func jsonQuoted(_ value: String) -> String {
    var out = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
