import KubeModel
import WeftAPI

/// What the sidecar injector adds to a pod: the `weft-config` ConfigMap's injection keys, with defaults.
public struct InjectionSettings: Codable, Hashable, Sendable {
    /// The weft-proxy image (also the `weft-init` image: `weft-proxy init`).
    public var proxyImage: String
    /// `imagePullPolicy` of the injected containers; nil leaves Kubernetes' default.
    public var imagePullPolicy: String?
    /// Native sidecar (an initContainers entry with `restartPolicy: Always`, Kubernetes 1.29+); false puts the
    /// proxy first in `containers` (the classic sidecar, for older clusters).
    public var nativeSidecars: Bool
    /// Transparent capture (on by default): the `weft-init` init container redirects the pod's traffic to the
    /// proxy, and HTTP probes of the app are rewritten to go through the proxy's status port (`/app-health/`).
    public var capture: Bool
    /// The controller's push and CA address, HOST:PORT.
    public var controllerAddress: String
    /// The mesh's trust domain and root namespace (the controller's namespace).
    public var trustDomain: String
    public var rootNamespace: String
    /// The ConfigMap (in the pod's namespace) holding the trust bundle as `ca.crt`.
    public var caBundleConfigMap: String
    /// CPU and memory requests of the proxy when the pod's annotations say nothing; memory is also its limit.
    public var proxyCPU: String
    public var proxyMemory: String
    /// The proxy's ports.
    public var outboundPort: Int
    public var inboundPort: Int
    public var adminPort: Int
    /// The status port (all interfaces): `/healthz/ready` and the rewritten app probes.
    public var statusPort: Int
    /// The UID (and GID) the proxy runs as; capture exempts its traffic.
    public var proxyUID: Int64
    /// Namespaces whose pods are never injected (the root namespace always is one).
    public var neverInjectNamespaces: [String]

    public init(
        proxyImage: String = "ghcr.io/weft-mesh/weft-proxy:dev", imagePullPolicy: String? = nil,
        nativeSidecars: Bool = true, capture: Bool = true,
        controllerAddress: String = "weft-controller.weft-system.svc:15012", trustDomain: String = "cluster.local",
        rootNamespace: String = weft.v1alpha1.rootNamespace, caBundleConfigMap: String = "weft-ca-root",
        proxyCPU: String = "100m", proxyMemory: String = "128Mi", outboundPort: Int = 15001,
        inboundPort: Int = 15006, adminPort: Int = 15000, statusPort: Int = 15020, proxyUID: Int64 = 1337,
        neverInjectNamespaces: [String] = ["kube-system", "kube-public", "kube-node-lease"]
    ) {
        self.proxyImage = proxyImage
        self.imagePullPolicy = imagePullPolicy
        self.nativeSidecars = nativeSidecars
        self.capture = capture
        self.controllerAddress = controllerAddress
        self.trustDomain = trustDomain
        self.rootNamespace = rootNamespace
        self.caBundleConfigMap = caBundleConfigMap
        self.proxyCPU = proxyCPU
        self.proxyMemory = proxyMemory
        self.outboundPort = outboundPort
        self.inboundPort = inboundPort
        self.adminPort = adminPort
        self.statusPort = statusPort
        self.proxyUID = proxyUID
        self.neverInjectNamespaces = neverInjectNamespaces
    }

    /// Reads the injection keys of the `weft-config` ConfigMap's `data` (`proxyImage`, `imagePullPolicy`,
    /// `nativeSidecars`, `capture`, `controllerAddress`, `caBundleConfigMap`, `proxyCPU`, `proxyMemory`) over the
    /// defaults for `mesh`'s trust domain and root namespace; a malformed value keeps its default and is reported.
    public static func from(
        configMapData data: [String: String], mesh: MeshSettings = MeshSettings()
    ) -> (
        InjectionSettings, [String]
    ) {
        var settings = InjectionSettings(trustDomain: mesh.trustDomain, rootNamespace: mesh.rootNamespace)
        settings.controllerAddress = "weft-controller.\(mesh.rootNamespace).svc:15012"
        return settings.applying(configMapData: data)
    }

    /// These settings with the injection keys of `data` applied (see ``from(configMapData:mesh:)``).
    public func applying(configMapData data: [String: String]) -> (InjectionSettings, [String]) {
        var settings = self
        var problems: [String] = []
        if let value = data["proxyImage"], !value.isEmpty { settings.proxyImage = value }
        if let value = data["imagePullPolicy"] {
            if ["Always", "IfNotPresent", "Never"].contains(value) {
                settings.imagePullPolicy = value
            } else {
                problems.append("data.imagePullPolicy: must be Always, IfNotPresent or Never, got \"\(value)\"")
            }
        }
        for (key, path) in [("nativeSidecars", \InjectionSettings.nativeSidecars), ("capture", \.capture)] {
            guard let value = data[key] else { continue }
            switch value {
            case "true": settings[keyPath: path] = true
            case "false": settings[keyPath: path] = false
            default: problems.append("data.\(key): must be \"true\" or \"false\", got \"\(value)\"")
            }
        }
        if let value = data["controllerAddress"], !value.isEmpty { settings.controllerAddress = value }
        if let value = data["caBundleConfigMap"], !value.isEmpty { settings.caBundleConfigMap = value }
        for (key, path) in [("proxyCPU", \InjectionSettings.proxyCPU), ("proxyMemory", \.proxyMemory)] {
            guard let value = data[key] else { continue }
            if Quantity.isValid(value) {
                settings[keyPath: path] = value
            } else {
                problems.append("data.\(key): \"\(value)\" is not a Kubernetes quantity (e.g. 100m, 128Mi)")
            }
        }
        return (settings, problems)
    }
}

/// Kubernetes resource quantities (`resource.Quantity`), checked by form only.
enum Quantity {
    /// `<number><suffix>`: a decimal number (sign allowed) and one of the binary (`Ki`...`Ei`), decimal
    /// (`n`, `u`, `m`, `k`, `M`...`E`) or exponent (`e3`, `E-2`) suffixes, or none.
    static func isValid(_ text: String) -> Bool {
        var rest = Substring(text)
        if rest.first == "+" || rest.first == "-" { rest = rest.dropFirst() }
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        rest = rest.dropFirst(digits.count)
        var fraction = Substring("")
        if rest.first == "." {
            rest = rest.dropFirst()
            fraction = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(fraction.count)
        }
        guard !digits.isEmpty || !fraction.isEmpty else { return false }
        let suffixes: Set<Substring> = [
            "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
        ]
        if suffixes.contains(rest) { return true }
        guard rest.first == "e" || rest.first == "E" else { return false }
        var exponent = rest.dropFirst()
        if exponent.first == "+" || exponent.first == "-" { exponent = exponent.dropFirst() }
        return !exponent.isEmpty && exponent.allSatisfy { $0.isASCII && $0.isNumber }
    }
}
