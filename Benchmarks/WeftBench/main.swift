// Compile benchmark: a synthetic cluster (10,000 pods, 2,000 services, 1,000 VirtualServices, 500
// DestinationPolicies by default), full compile time, recompile time after one VirtualService changes, and
// peak memory. Run through hack/bench-compile (release build). Also: --controller (hack/bench-controller), --push
// and --push-clients (hack/bench-push), --mint-svids DIR (the certificates of hack/bench-proxy's mTLS rows).
import Foundation
import WeftCompiler
import WeftTesting

func peakRSSMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kib = line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
        return kib / 1024
    }
    return 0
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

var arguments = CommandLine.arguments.dropFirst().makeIterator()
var cluster = SyntheticCluster()
var rounds = 3
var profileIncremental = 0
var controllerMode = false
var pushMode = false
var pushClientsPort: Int?
var mintDirectory: String?
while let argument = arguments.next() {
    if argument == "--controller" {
        controllerMode = true
        continue
    }
    if argument == "--push" {
        pushMode = true
        continue
    }
    if argument == "--mint-svids" {
        guard let directory = arguments.next() else {
            print("usage: weft-bench --mint-svids DIR")
            exit(2)
        }
        mintDirectory = directory
        continue
    }
    if argument == "--push-clients" {
        pushClientsPort = arguments.next().flatMap { Int($0) }
        continue
    }
    let value = arguments.next().flatMap { Int($0) } ?? 0
    switch argument {
    case "--pods": cluster.pods = value
    case "--services": cluster.services = value
    case "--virtual-services": cluster.virtualServices = value
    case "--destination-policies": cluster.destinationPolicies = value
    case "--namespaces": cluster.namespaces = value
    case "--rounds": rounds = max(1, value)
    case "--profile-incremental": profileIncremental = value
    default:
        print(
            "usage: weft-bench [--pods N] [--services N] [--virtual-services N] [--destination-policies N] [--namespaces N] [--rounds N]"
                + " | --mint-svids DIR"
        )
        exit(2)
    }
}

if let directory = mintDirectory {
    try MintSVIDs.run(directory: directory)
    exit(0)
}
if let port = pushClientsPort {
    try await PushBenchmark.clients(port: port, pods: cluster.pods)
    exit(0)
}
if pushMode {
    try await PushBenchmark.run(pods: cluster.pods)
    exit(0)
}
if controllerMode {
    try await ControllerBenchmark.run(cluster: cluster)
    exit(0)
}
let clock = ContinuousClock()
let snapshot = cluster.snapshot()
let compiler = WeftCompiler()
if profileIncremental > 0 {
    // Only incremental compiles, for a profiler: one VirtualService flips between two timeouts.
    var session = compiler.session()
    _ = session.compile(snapshot)
    var changed = snapshot
    let start = clock.now
    for i in 0..<profileIncremental {
        changed.virtualServices[7] = cluster.virtualService(7, timeout: "\(2 + i % 2)s")
        _ = session.compile(changed)
    }
    print(
        String(format: "%.1f ms per incremental compile", milliseconds(clock.now - start) / Double(profileIncremental)))
    exit(0)
}
var full: [Double] = []
var incremental: [Double] = []
var proxies = 0
var session = compiler.session()
for round in 0..<rounds {
    var fresh = compiler.session()
    let start = clock.now
    let result = fresh.compile(snapshot)
    full.append(milliseconds(clock.now - start))
    proxies = result.proxies.count

    // One VirtualService changes: a warm session recompiles.
    _ = session.compile(snapshot)
    var changed = snapshot
    changed.virtualServices[round % changed.virtualServices.count] =
        cluster.virtualService(round % changed.virtualServices.count, timeout: "\(3 + round)s")
    let start2 = clock.now
    let updated = session.compile(changed)
    incremental.append(milliseconds(clock.now - start2))
    precondition(updated.proxies.count == proxies, "proxy count changed")
}
full.sort()
incremental.sort()
print(
    "weft compile benchmark (release): \(cluster.pods) pods, \(cluster.services) services, \(cluster.virtualServices) VirtualServices, \(cluster.destinationPolicies) DestinationPolicies, \(cluster.namespaces) namespaces"
)
print("proxies compiled:            \(proxies)")
print(String(format: "full compile (median of %d):  %.1f ms   (target < 1000 ms)", rounds, full[full.count / 2]))
print(String(format: "one VirtualService changed:  %.1f ms   (target < 20 ms)", incremental[incremental.count / 2]))
print(String(format: "peak memory (VmHWM):         %.0f MiB (target < 300 MiB)", peakRSSMiB()))
