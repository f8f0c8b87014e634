import Crypto
import Foundation
import ProxyConfig
import Testing
import WeftIdentity

/// Transparent capture end to end: two "pods" (network namespaces the test creates, joined by a veth pair, each
/// with `weft-proxy init`'s rules and a real `weft-proxy` running as UID 1337), STRICT mTLS with SVIDs from the
/// Weft CA. The client app in pod A calls a ClusterIP in plain HTTP; the answer comes from the app in pod B; the
/// proxies' metrics show the request outbound on A and the mTLS connection accepted inbound on B; a capture on
/// the veth sees TLS records and never the request's marker.
@Suite(
    "capture between two pods",
    .enabled(if: CaptureNamespace.unavailableReason == nil, "\(CaptureNamespace.unavailableReason ?? "")"),
    .serialized)
struct CaptureTwoPodTests {
    static let clientID = "spiffe://cluster.local/ns/shop/sa/client"
    static let serverID = "spiffe://cluster.local/ns/shop/sa/web"
    static let service = "web.shop.svc.cluster.local"
    static let clusterIP = "10.96.77.10"

    @Test func plainHTTPToAClusterIPCrossesBothProxiesInMTLS() async throws {
        let directory = try Self.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.writeIdentities(in: directory)
        try Self.clientConfig().encoded().write(to: URL(fileURLWithPath: "\(directory)/a.json"))
        try Self.serverConfig().encoded().write(to: URL(fileURLWithPath: "\(directory)/b.json"))
        let marker = "weft-marker-\(UInt32.random(in: 0...UInt32.max))"

        try await CaptureNamespace.with { podA in
            try await CaptureNamespace.with { podB in
                try await Self.link(podA, "10.77.0.1", podB, "10.77.0.2")
                for pod in [podA, podB] {
                    let rules = try await pod.run([ProxyBinaryTests.binary, "init"])
                    try #require(rules.status == 0, "\(rules.stderr)")
                }
                var processes: [BackgroundProcess] = []
                defer { processes.forEach { $0.stop() } }
                try await Self.startAppsAndProxies(podA, podB, directory: directory, into: &processes)
                let capture = "\(directory)/veth.pcap"
                processes.append(
                    try await BackgroundProcess.start(
                        "ip",
                        [
                            "netns", "exec", podA.name, "tcpdump", "-i", "vwa", "--immediate-mode", "-U", "-s", "0",
                            "-w", capture, "tcp",
                        ],
                        waitForLine: false))
                try await eventually { Self.fileSize(capture) >= 24 }

                // The client app in pod A: plain HTTP to the ClusterIP, no proxy configured, Host names no service.
                let answer = try await podA.fetch("http://\(Self.clusterIP)/hello/\(marker)", host: "elsewhere.example")
                #expect(answer == "200 served-by-pod-b path=/hello/\(marker)", "\(answer)")
                // Pod B's IP and port directly (a mesh endpoint in A's config): TCP to it, in mTLS too.
                let direct = try await podA.fetch("http://10.77.0.2:8080/direct/\(marker)")
                #expect(direct == "200 served-by-pod-b path=/direct/\(marker)", "\(direct)")

                // The kubelet's probe of B's app, rewritten to B's status port (which capture leaves alone): the
                // proxy runs it against the app, whose own port only takes mTLS from outside the pod.
                let probe = try await podA.fetch("http://10.77.0.2:15020/app-health/app/readyz")
                #expect(probe.hasPrefix("200 app probe: HTTP 200"), "\(probe)")

                try await Self.expectBothHopsCounted(podA, podB, tlsAccepted: 1)

                // Stop the capture once it holds packets (tcpdump writes each at once: --immediate-mode, -U), then
                // read what crossed the veth.
                // (Waits at most the helper's bound for TLS application data, the response's own records.)
                let captured = { [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: capture))) ?? Data()) }
                try? await eventually { Self.contains(captured(), [0x17, 0x03, 0x03]) }
                processes.last?.signal(SIGINT)
                try await eventually { !(processes.last?.process.isRunning ?? false) }
                let bytes = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: capture))) ?? Data())
                #expect(bytes.count > 24, "the capture is empty")
                #expect(!Self.contains(bytes, Array(marker.utf8)), "the marker crossed the veth in plaintext")
                #expect(!Self.contains(bytes, Array("served-by-pod-b".utf8)), "the answer crossed in plaintext")
                // A TLS handshake record (0x16 0x03 0x01|0x03) and application data records (0x17 0x03 0x03).
                #expect(Self.contains(bytes, [0x16, 0x03, 0x01]) || Self.contains(bytes, [0x16, 0x03, 0x03]))
                #expect(Self.contains(bytes, [0x17, 0x03, 0x03]), "no TLS application data on the veth")

                // A destination the mesh does not know passes through as plain TCP (A's default), and B delivers a
                // port its config does not list to the app on that port.
                let passthrough = try await podA.fetch("http://10.77.0.2:9090/plain")
                #expect(passthrough == "200 other-app path=/plain", "\(passthrough)")
                // With `outboundUnknown: refuse` (the file is watched), the same call is closed.
                var refusing = try Self.clientConfig()
                refusing.outboundUnknown = .refuse
                refusing = try refusing.versioned()
                try refusing.encoded().write(to: URL(fileURLWithPath: "\(directory)/a.json"))
                try await eventually {
                    try await podA.fetch("http://127.0.0.1:15000/ready").contains(refusing.version)
                }
                let refused = try await podA.fetch("http://10.77.0.2:9090/plain")
                #expect(refused.hasPrefix("000"), "\(refused)")
                let rejected = prometheusValues(
                    try await podA.fetch("http://127.0.0.1:15000/metrics"), "weft_proxy_tcp_rejected_total",
                    ["direction=\"outbound\""])
                #expect(rejected == [1])
            }
        }
    }

    /// Pod B's apps (8080, a mesh port, and 9090, a port no config names) and both proxies, as UID 1337 on
    /// `0.0.0.0,::` (as injected); returns once both proxies are ready.
    static func startAppsAndProxies(
        _ podA: CaptureNamespace, _ podB: CaptureNamespace, directory: String, into processes: inout [BackgroundProcess]
    ) async throws {
        for (port, name) in [(8080, "served-by-pod-b"), (9090, "other-app")] {
            let app = try await BackgroundProcess.start(
                "ip", ["netns", "exec", podB.name, "python3", "-c", Self.serverApp, "\(port)", name])
            processes.append(app)
            try #require(app.firstLine == "READY", "server app: \(app.firstLine)")
        }
        for (pod, name) in [(podA, "a"), (podB, "b")] {
            // B also serves the status port, with its app's readiness probe as the injector rewrites it.
            let status = name == "b" ? ["--status-port", "15020"] : []
            processes.append(
                try await BackgroundProcess.start(
                    "ip",
                    [
                        "netns", "exec", pod.name, "setpriv", "--reuid=1337", "--regid=1337", "--clear-groups",
                        ProxyBinaryTests.binary, "--config", "\(directory)/\(name).json", "--listen", "0.0.0.0,::",
                        "--concurrency", "1", "--tls-cert", "\(directory)/\(name).crt", "--tls-key",
                        "\(directory)/\(name).key", "--trust-bundle", "\(directory)/ca.crt",
                    ] + status, waitForLine: false,
                    environment: [
                        "WEFT_APP_PROBES": #"{"/app-health/app/readyz": {"httpGet": {"path": "/ready", "port": 8080}}}"#
                    ]))
        }
        for pod in [podA, podB] {
            try await eventually { try await pod.fetch("http://127.0.0.1:15000/ready").hasPrefix("200") }
        }
    }

    /// The same two pods over IPv6 only (ULA addresses on the veth, an IPv6 ClusterIP): `weft-proxy init`
    /// installs the ip6tables rules, A's proxy reads `IP6T_SO_ORIGINAL_DST` on its `::` listener, and B's
    /// inbound `::` listener delivers to the app; both hops in mTLS.
    @Test func plainHTTPToAnIPv6ClusterIPCrossesBothProxiesInMTLS() async throws {
        let directory = try Self.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.writeIdentities(in: directory)
        try Self.clientConfig(ipv6: true).encoded().write(to: URL(fileURLWithPath: "\(directory)/a.json"))
        try Self.serverConfig(ipv6: true).encoded().write(to: URL(fileURLWithPath: "\(directory)/b.json"))
        let marker = "weft-marker-\(UInt32.random(in: 0...UInt32.max))"

        try await CaptureNamespace.with { podA in
            try await CaptureNamespace.with { podB in
                try await Self.link6(podA, Self.podA6, podB, Self.podB6)
                for pod in [podA, podB] {
                    let rules = try await pod.run([ProxyBinaryTests.binary, "init"])
                    try #require(rules.status == 0, "\(rules.stderr)")
                    let saved = try await pod.run(["ip6tables-save", "-t", "nat"])
                    #expect(
                        saved.stdout.contains("-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001"), "\(saved.stdout)"
                    )
                }
                var processes: [BackgroundProcess] = []
                defer { processes.forEach { $0.stop() } }
                try await Self.startAppsAndProxies(podA, podB, directory: directory, into: &processes)

                let answer = try await podA.fetch(
                    "http://[\(Self.clusterIP6)]/hello/\(marker)", host: "elsewhere.example")
                #expect(answer == "200 served-by-pod-b path=/hello/\(marker)", "\(answer)")
                let direct = try await podA.fetch("http://[\(Self.podB6)]:8080/direct/\(marker)")
                #expect(direct == "200 served-by-pod-b path=/direct/\(marker)", "\(direct)")
                // An IPv6 destination the mesh does not know passes through (to B's other app, captured inbound).
                let passthrough = try await podA.fetch("http://[\(Self.podB6)]:9090/plain")
                #expect(passthrough == "200 other-app path=/plain", "\(passthrough)")

                try await Self.expectBothHopsCounted(podA, podB, tlsAccepted: 2)
            }
        }
    }

    /// A's proxy counted one outbound 2xx to the service; B's accepted at least `tlsAccepted` mTLS connections
    /// and counted two inbound 2xx.
    static func expectBothHopsCounted(_ podA: CaptureNamespace, _ podB: CaptureNamespace, tlsAccepted: Double)
        async throws
    {
        let metricsA = try await podA.fetch("http://127.0.0.1:15000/metrics")
        let outbound = prometheusValues(
            metricsA, "weft_proxy_requests_total",
            ["direction=\"outbound\"", "destination_service=\"\(Self.service)\"", "response_class=\"2xx\""])
        #expect(outbound == [1], "\(metricsA)")
        let metricsB = try await podB.fetch("http://127.0.0.1:15000/metrics")
        let accepted = prometheusValues(metricsB, "weft_proxy_tls_connections_total", ["direction=\"inbound\""])
        #expect((accepted.first ?? 0) >= tlsAccepted, "\(metricsB)")
        let inbound = prometheusValues(
            metricsB, "weft_proxy_requests_total", ["direction=\"inbound\"", "response_class=\"2xx\""])
        #expect(inbound == [2], "\(metricsB)")
    }

    static let clusterIP6 = "fd00:96::10"
    static let podA6 = "fd77::1"
    static let podB6 = "fd77::2"

    /// A veth pair with only IPv6 addresses (`nodad`: usable at once), and in A a default IPv6 route through B.
    static func link6(_ a: CaptureNamespace, _ addressA: String, _ b: CaptureNamespace, _ addressB: String) async throws
    {
        let steps: [(CaptureNamespace, [String])] = [
            (a, ["ip", "link", "add", "vwa", "type", "veth", "peer", "name", "vwb", "netns", b.name]),
            (a, ["ip", "-6", "addr", "add", "\(addressA)/64", "dev", "vwa", "nodad"]),
            (a, ["ip", "link", "set", "vwa", "up"]),
            (b, ["ip", "-6", "addr", "add", "\(addressB)/64", "dev", "vwb", "nodad"]),
            (b, ["ip", "link", "set", "vwb", "up"]),
            (a, ["ip", "-6", "route", "add", "default", "via", addressB, "dev", "vwa"]),
        ]
        for (namespace, command) in steps {
            let result = try await namespace.run(command)
            try #require(result.status == 0, "\(command): \(result.stderr)")
        }
    }

    static let serverApp = """
        sys = __import__("sys"); http = __import__("http.server")
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = ("%s path=%s" % (sys.argv[2], self.path)).encode()
                self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args): pass
        server = http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), Handler)
        print("READY", flush=True)
        server.serve_forever()
        """

    /// A veth pair between the two namespaces, an address on each end, and in A a default route through B (so
    /// that A's app can connect to a ClusterIP; the capture takes it before it leaves).
    static func link(_ a: CaptureNamespace, _ addressA: String, _ b: CaptureNamespace, _ addressB: String) async throws
    {
        let steps: [(CaptureNamespace, [String])] = [
            (a, ["ip", "link", "add", "vwa", "type", "veth", "peer", "name", "vwb", "netns", b.name]),
            (a, ["ip", "addr", "add", "\(addressA)/24", "dev", "vwa"]), (a, ["ip", "link", "set", "vwa", "up"]),
            (b, ["ip", "addr", "add", "\(addressB)/24", "dev", "vwb"]), (b, ["ip", "link", "set", "vwb", "up"]),
            (a, ["ip", "route", "add", "default", "via", addressB, "dev", "vwa"]),
        ]
        for (namespace, command) in steps {
            let result = try await namespace.run(command)
            try #require(result.status == 0, "\(command): \(result.stderr)")
        }
    }

    static func makeDirectory() throws -> String {
        let directory = NSTemporaryDirectory() + "weft-twopod-\(UUID().uuidString)"
        // The proxies run as UID 1337: they must read their configs and certificates.
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        return directory
    }

    /// The Weft CA's root in `ca.crt`; SVIDs it issues from CSRs: `a.crt`/`a.key` (client), `b.crt`/`b.key` (web).
    static func writeIdentities(in directory: String) throws {
        let domain = try TrustDomain("cluster.local")
        let now = Date()
        let secret = try CertificateAuthority.generateRoot(trustDomain: domain, now: now, serialNumbers: .random)
        let authority = try CertificateAuthority(secret: secret, trustDomain: domain, serialNumbers: .random)
        try Self.write(secret.trustRootsPEM ?? secret.certificatePEM, "\(directory)/ca.crt")
        for (name, id) in [("a", Self.clientID), ("b", Self.serverID)] {
            let key = P256.Signing.PrivateKey()
            let identity = try SpiffeID(id)
            let issued = try authority.issue(
                csrPEM: try CSRBuilder.make(identity: identity, key: key), for: identity, now: now)
            try Self.write(issued.fullChainPEM, "\(directory)/\(name).crt")
            try Self.write(key.pemRepresentation, "\(directory)/\(name).key")
        }
    }

    static func write(_ text: String, _ path: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
    }

    static func identity(_ name: String, account: String, address: String) -> ProxyIdentity {
        ProxyIdentity(
            id: "shop/\(name)", namespace: "shop", name: name, serviceAccount: account,
            spiffeID: "spiffe://cluster.local/ns/shop/sa/\(account)", trustDomain: "cluster.local",
            addresses: [address])
    }

    /// Pod A: the service `web` on ClusterIP 10.96.77.10:80, its one endpoint pod B's 10.77.0.2:8080 (mTLS).
    static func clientConfig(ipv6: Bool = false) throws -> ProxyConfig {
        let clusterName = Cluster.name(service: Self.service, port: 80, subset: nil)
        var cluster = TestConfig.cluster("web", ports: [])
        cluster.name = clusterName
        cluster.endpoints = [Endpoint(address: ipv6 ? Self.podB6 : "10.77.0.2", port: 8080, identity: Self.serverID)]
        let service = OutboundService(
            host: Self.service, aliases: [ipv6 ? Self.clusterIP6 : Self.clusterIP, "web.shop", "web.shop.svc"],
            port: 80, protocol: .http1, routes: [TestConfig.forward(to: clusterName)])
        return try ProxyConfig(
            proxy: Self.identity("client", account: "client", address: ipv6 ? Self.podA6 : "10.77.0.1"),
            outbound: [service],
            clusters: [cluster]
        ).versioned()
    }

    /// Pod B: port 8080 STRICT, only the client's identity may call.
    static func serverConfig(ipv6: Bool = false) throws -> ProxyConfig {
        let allowClient = AuthorizationTable(policies: [
            AuthorizationPolicy(
                name: "shop/allow-client", action: .allow,
                rules: [AuthorizationRule(from: [AuthorizationSource(principals: [Self.clientID])])])
        ])
        return try ProxyConfig(
            proxy: Self.identity("web", account: "web", address: ipv6 ? Self.podB6 : "10.77.0.2"),
            inbound: [
                InboundPort(port: 8080, protocol: .http1, tls: .strict, appPort: 8080, authorization: allowClient)
            ]
        ).versioned()
    }

    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}

extension CaptureNamespace {
    /// A GET from inside the namespace (as root: captured like any app), as `"<status> <body>"`; `"000 <error>"`
    /// when it fails.
    func fetch(_ url: String, host: String? = nil) async throws -> String {
        let script = """
            sys = __import__("sys"); urllib = __import__("urllib.request")
            request = urllib.request.Request(sys.argv[1])
            if len(sys.argv) > 2: request.add_header("Host", sys.argv[2])
            try:
                response = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10)
                print(response.status, response.read().decode(), end="")
            except urllib.error.HTTPError as error:
                print(error.code, error.read().decode(), end="")
            except Exception as error:
                print("000", error, end="")
            """
        let result = try await self.run(["python3", "-c", script, url] + (host.map { [$0] } ?? []))
        return result.stdout
    }
}
