import Foundation
import KubeModel

/// One pod being injected: reads its annotations, adds the proxy (native or classic), the `weft-init`
/// container when capture is on, the identity volume, and rewrites the app's HTTP probes.
struct Sidecar {
    static let initContainer = "weft-init"
    static let identityVolume = "weft-identity"
    static let identityPath = "/var/run/secrets/weft"

    var pod: core.v1.Pod
    let settings: InjectionSettings
    /// `spec.template.` for a workload's template, empty for a pod: prefixes field paths in errors.
    let prefix: String
    var warnings: [String] = []

    init(pod: core.v1.Pod, settings: InjectionSettings, prefix: String) {
        self.pod = pod
        self.settings = settings
        self.prefix = prefix
    }

    mutating func apply() throws(InjectionError) {
        let annotations = self.pod.metadata.annotations ?? [:]
        let cpu = try self.quantity(Injector.Annotations.proxyCPU, in: annotations) ?? self.settings.proxyCPU
        let memory = try self.quantity(Injector.Annotations.proxyMemory, in: annotations) ?? self.settings.proxyMemory
        let capture = self.settings.capture
        var initArguments: [String] = []
        if capture {
            initArguments = try self.initArguments(annotations)
        }
        var spec = self.pod.spec ?? core.v1.PodSpec()
        var probes: [String: JSONValue] = [:]
        var rewritten: [String] = []
        if capture {
            for index in spec.containers.indices {
                self.rewriteProbes(of: &spec.containers[index], into: &probes, rewritten: &rewritten)
            }
        }
        let proxy = self.proxyContainer(cpu: cpu, memory: memory, probes: probes)
        var initContainers = (spec.initContainers ?? []).filter { $0.name != Sidecar.initContainer }
        var injectedInit: [String] = []
        var injectedContainers: [String] = []
        if self.settings.nativeSidecars {
            initContainers.insert(proxy, at: 0)
            injectedInit.append(WeftLabels.proxyContainer)
        } else {
            spec.containers.insert(proxy, at: 0)
            injectedContainers.append(WeftLabels.proxyContainer)
        }
        if capture {
            initContainers.insert(self.captureContainer(arguments: initArguments), at: 0)
            injectedInit.insert(Sidecar.initContainer, at: 0)
        }
        spec.initContainers = initContainers.isEmpty ? nil : initContainers
        var volumes = (spec.volumes ?? []).filter { $0.name != Sidecar.identityVolume }
        volumes.append(self.identityVolume())
        spec.volumes = volumes
        self.pod.spec = spec

        var metadata = self.pod.metadata
        var written = metadata.annotations ?? [:]
        if !self.settings.nativeSidecars, written[Injector.Annotations.defaultContainer] == nil,
            let app = spec.containers.first(where: { $0.name != WeftLabels.proxyContainer })
        {
            written[Injector.Annotations.defaultContainer] = app.name
        }
        let status: JSONValue = [
            "version": 1,
            "mode": .string(self.settings.nativeSidecars ? "native" : "classic"),
            "capture": .bool(capture),
            "image": .string(self.settings.proxyImage),
            "initContainers": .array(injectedInit.map { .string($0) }),
            "containers": .array(injectedContainers.map { .string($0) }),
            "volumes": [.string(Sidecar.identityVolume)],
            "rewrittenProbes": .array(rewritten.map { .string($0) }),
        ]
        written[Injector.Annotations.status] = Sidecar.compactJSON(status)
        metadata.annotations = written
        self.pod.metadata = metadata
    }

    // MARK: - Annotations

    func quantity(_ name: String, in annotations: [String: String]) throws(InjectionError) -> String? {
        guard let value = annotations[name] else { return nil }
        guard Quantity.isValid(value) else {
            throw InjectionError(
                "\(self.prefix)metadata.annotations[\(name)]: \"\(value)\" is not a Kubernetes quantity "
                    + "(e.g. 100m, 128Mi)")
        }
        return value
    }

    /// `weft-proxy init` arguments: the proxy's UID and ports, and the exclusions of the pod's annotations (the
    /// status port is always excluded from inbound capture, so that the kubelet's probes reach it).
    func initArguments(_ annotations: [String: String]) throws(InjectionError) -> [String] {
        var arguments = [
            "init", "--proxy-uid", String(self.settings.proxyUID), "--outbound-port",
            String(self.settings.outboundPort), "--inbound-port", String(self.settings.inboundPort),
        ]
        var inbound = [String(self.settings.statusPort)]
        if let value = annotations[Injector.Annotations.excludeInboundPorts] {
            inbound += try self.ports(value, annotation: Injector.Annotations.excludeInboundPorts)
        }
        arguments += ["--exclude-inbound-ports", inbound.joined(separator: ",")]
        if let value = annotations[Injector.Annotations.excludeOutboundPorts] {
            let ports = try self.ports(value, annotation: Injector.Annotations.excludeOutboundPorts)
            if !ports.isEmpty { arguments += ["--exclude-outbound-ports", ports.joined(separator: ",")] }
        }
        if let value = annotations[Injector.Annotations.excludeOutboundCIDRs] {
            let cidrs = try self.cidrs(value)
            if !cidrs.isEmpty { arguments += ["--exclude-outbound-cidrs", cidrs.joined(separator: ",")] }
        }
        return arguments
    }

    private func items(_ value: String) -> [String] {
        value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func ports(_ value: String, annotation: String) throws(InjectionError) -> [String] {
        var ports: [String] = []
        for item in self.items(value) {
            guard item.count <= 5, item.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(item),
                (1...65535).contains(port)
            else {
                throw InjectionError(
                    "\(self.prefix)metadata.annotations[\(annotation)]: \"\(item)\" is not a port (1-65535)")
            }
            ports.append(String(port))
        }
        return ports
    }

    func cidrs(_ value: String) throws(InjectionError) -> [String] {
        let annotation = Injector.Annotations.excludeOutboundCIDRs
        return try self.items(value).map { (item: String) throws(InjectionError) -> String in
            guard CIDR.isValid(item) else {
                throw InjectionError(
                    "\(self.prefix)metadata.annotations[\(annotation)]: \"\(item)\" is not a CIDR "
                        + "(e.g. 10.0.0.0/8, fd00::/8)")
            }
            return item
        }
    }

    // MARK: - Helpers

    static func compactJSON(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// IPv4 and IPv6 CIDRs (`10.0.0.0/8`, `fd00::/8`), checked by form.
enum CIDR {
    static func isValid(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let bits = Int(parts[1]), parts[1].allSatisfy({ $0.isASCII && $0.isNumber })
        else { return false }
        if parts[0].contains(":") { return (0...128).contains(bits) && self.isIPv6(parts[0]) }
        return (0...32).contains(bits) && self.isIPv4(parts[0])
    }

    static func isIPv4(_ text: Substring) -> Bool {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4
            && octets.allSatisfy { octet in
                !octet.isEmpty && octet.count <= 3 && octet.allSatisfy { $0.isASCII && $0.isNumber }
                    && (Int(octet) ?? 256) <= 255
            }
    }

    static func isIPv6(_ text: Substring) -> Bool {
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return false }
        var groups = 0
        for half in halves where !half.isEmpty {
            for group in half.split(separator: ":", omittingEmptySubsequences: false) {
                guard !group.isEmpty, group.count <= 4, group.allSatisfy({ $0.isHexDigit }) else { return false }
                groups += 1
            }
        }
        return halves.count == 2 ? groups < 8 : groups == 8
    }
}
