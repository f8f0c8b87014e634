import Foundation
import Synchronization

/// What one refresh shows: the last second's calls per service, and the mesh's counters.
struct DemoFrame: Sendable {
    var elapsed: Double
    var window: [DemoService: DemoTally]
    /// Seconds the window covers.
    var windowSeconds: Double
    /// Retries the frontend's proxy made in the window (to payments, mostly).
    var retries: Int
    var syncedProxies: Int
    var proxies: Int
    /// mTLS connections the proxies' inbound listeners accepted, since the start.
    var mtlsConnections: Int
    /// Plaintext or failed handshakes refused by the STRICT inbound listeners, since the start.
    var tlsRefused: Int
    /// Requests denied by an AuthorizationPolicy, since the start.
    var deniedTotal: Int
}

/// Where the demo writes: a table redrawn every second on a terminal, plain lines otherwise (and with
/// `--no-tui`); with `--json` the lines go to standard error and standard output gets only the summary.
final class DemoConsole: Sendable {
    enum Mode: Sendable {
        case table
        case lines
        case linesToStandardError
    }

    let mode: Mode
    private let header: String
    private let events = Mutex<[String]>([])
    private static let keptEvents = 12

    init(mode: Mode, header: String) {
        self.mode = mode
        self.header = header
    }

    /// Writes `text` to the console's stream.
    func write(_ text: String) {
        let handle = self.mode == .linesToStandardError ? FileHandle.standardError : FileHandle.standardOutput
        handle.write(Data(text.utf8))
    }

    /// Something happened (a config version, an ACK, a condition): a line at once, or in the table's list.
    func event(_ text: String, elapsed: Double) {
        let line = "\(Self.clock(elapsed)) \(text)"
        switch self.mode {
        case .table:
            self.events.withLock { events in
                events.append(line)
                if events.count > Self.keptEvents { events.removeFirst(events.count - Self.keptEvents) }
            }
        case .lines, .linesToStandardError:
            self.write(line + "\n")
        }
    }

    /// The refresh of one second.
    func show(_ frame: DemoFrame) {
        switch self.mode {
        case .table:
            let events = self.events.withLock { $0 }
            // Home, clear the screen, then the table and the latest events.
            self.write(
                "\u{1B}[H\u{1B}[2J" + self.header + "\n\n" + Self.table(frame) + "\nEvents:\n"
                    + events.map { "  " + $0 + "\n" }.joined())
        case .lines, .linesToStandardError:
            self.write(Self.line(frame) + "\n")
        }
    }

    static func clock(_ seconds: Double) -> String {
        let whole = Int(seconds)
        return String(format: "[%02d:%02d]", whole / 60, whole % 60)
    }

    static func milliseconds(_ value: Double?) -> String {
        guard let value else { return "-" }
        return value < 10 ? String(format: "%.2fms", value) : String(format: "%.1fms", value)
    }

    static func percent(_ value: Double?) -> String {
        value.map { String(format: "%.1f%%", $0) } ?? "-"
    }

    static func rate(_ count: Int, _ seconds: Double) -> String {
        String(format: "%.1f", Double(count) / max(seconds, 0.001))
    }

    /// `v1 90% v2 10%` from answers by version.
    static func split(_ versions: [String: Int]) -> String {
        let total = versions.values.reduce(0, +)
        guard total > 0 else { return "-" }
        return versions.keys.sorted().map { key in
            "\(key) \(String(format: "%.0f%%", Double(versions[key] ?? 0) * 100 / Double(total)))"
        }.joined(separator: " ")
    }

    static func table(_ frame: DemoFrame) -> String {
        var rows = [["SERVICE", "REQ/S", "SUCCESS", "P50", "P99", "DENIED", ""]]
        for service in DemoService.allCases {
            let tally = frame.window[service] ?? DemoTally()
            var note = ""
            switch service {
            case .frontend: note = "from the load generator; every 20th request is GET /admin/orders"
            case .catalog: note = "split " + Self.split(tally.versions)
            case .payments:
                note = "retries \(Self.rate(frame.retries, frame.windowSeconds))/s (one instance fails 1 in 3)"
            }
            rows.append([
                service.rawValue, Self.rate(tally.requests, frame.windowSeconds), Self.percent(tally.successPercent),
                Self.milliseconds(tally.latency.percentileMilliseconds(0.5)),
                Self.milliseconds(tally.latency.percentileMilliseconds(0.99)), String(tally.denied), note,
            ])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        var text = rows.map { row in
            row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                if column == row.count - 1 { return cell }
                return column == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ").trimmingSuffixSpaces
        }.joined(separator: "\n")
        text += "\n\nproxies \(frame.syncedProxies)/\(frame.proxies) SYNCED · mTLS connections accepted "
        text += "\(frame.mtlsConnections) · plaintext/handshakes refused \(frame.tlsRefused) · "
        text += "denied (403 rbac_denied) \(frame.deniedTotal) · \(Self.clock(frame.elapsed))\n"
        return text
    }

    static func line(_ frame: DemoFrame) -> String {
        var parts: [String] = []
        for service in DemoService.allCases {
            let tally = frame.window[service] ?? DemoTally()
            var part =
                "\(service.rawValue) \(Self.rate(tally.requests, frame.windowSeconds))/s "
                + "\(Self.percent(tally.successPercent)) p50 \(Self.milliseconds(tally.latency.percentileMilliseconds(0.5))) "
                + "p99 \(Self.milliseconds(tally.latency.percentileMilliseconds(0.99)))"
            switch service {
            case .frontend: part += " denied \(tally.denied)"
            case .catalog: part += " split " + Self.split(tally.versions)
            case .payments: part += " retries \(frame.retries)"
            }
            parts.append(part)
        }
        return "\(Self.clock(frame.elapsed)) " + parts.joined(separator: " | ")
            + " | mTLS \(frame.mtlsConnections) refused \(frame.tlsRefused) synced \(frame.syncedProxies)/\(frame.proxies)"
    }
}

extension String {
    /// The string without its trailing spaces (a table's empty last cells).
    var trimmingSuffixSpaces: String {
        var text = Substring(self)
        while text.hasSuffix(" ") { text = text.dropLast() }
        return String(text)
    }
}
