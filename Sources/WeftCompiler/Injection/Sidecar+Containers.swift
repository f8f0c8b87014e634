import KubeModel

extension Sidecar {
    /// The environment variable carrying the app's original probes (JSON) to the proxy's status port.
    static let appProbesEnv = "WEFT_APP_PROBES"

    /// The `weft-proxy` container: native sidecar (`restartPolicy: Always`, a startup probe so the app starts
    /// once the proxy is ready) or classic.
    func proxyContainer(cpu: String, memory: String, probes: [String: JSONValue]) -> core.v1.Container {
        var proxy = core.v1.Container()
        proxy.name = WeftLabels.proxyContainer
        proxy.image = self.settings.proxyImage
        proxy.imagePullPolicy = self.settings.imagePullPolicy
        var arguments = [
            "--controller", "$(WEFT_CONTROLLER)",
            "--controller-ca", "\(Sidecar.identityPath)/ca.crt",
            "--token-file", "\(Sidecar.identityPath)/token",
            "--proxy-id", "$(POD_NAMESPACE)/$(POD_NAME)",
            "--service-account", "$(SERVICE_ACCOUNT)",
            "--trust-domain", self.settings.trustDomain,
            "--controller-namespace", self.settings.rootNamespace,
            "--outbound-port", String(self.settings.outboundPort),
            "--inbound-port", String(self.settings.inboundPort),
            "--admin-port", String(self.settings.adminPort),
            "--status-port", String(self.settings.statusPort),
        ]
        if self.settings.capture {
            // Redirected traffic arrives on the pod's addresses, not on loopback; IPv6 too in a dual-stack or IPv6
            // pod (ip6tables redirects there when the pod has an IPv6 address).
            arguments += ["--listen", "0.0.0.0,::"]
        }
        proxy.args = arguments
        var environment = [
            Self.fieldEnv("POD_NAME", "metadata.name"),
            Self.fieldEnv("POD_NAMESPACE", "metadata.namespace"),
            Self.fieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
            Self.env("WEFT_CONTROLLER", self.settings.controllerAddress),
        ]
        if !probes.isEmpty {
            environment.append(Self.env(Self.appProbesEnv, Sidecar.compactJSON(.object(probes))))
        }
        proxy.env = environment
        var port = core.v1.ContainerPort()
        port.name = "weft-status"
        port.containerPort = Int32(clamping: self.settings.statusPort)
        port.protocol = "TCP"
        proxy.ports = [port]
        var resources = core.v1.ResourceRequirements()
        resources.requests = ["cpu": .string(cpu), "memory": .string(memory)]
        resources.limits = ["memory": .string(memory)]
        proxy.resources = resources
        var mount = core.v1.VolumeMount()
        mount.name = Sidecar.identityVolume
        mount.mountPath = Sidecar.identityPath
        mount.readOnly = true
        proxy.volumeMounts = [mount]
        proxy.readinessProbe = self.readyProbe(period: 5, failures: 3)
        proxy.startupProbe = self.readyProbe(period: 1, failures: 600)
        var security = core.v1.SecurityContext()
        security.runAsUser = self.settings.proxyUID
        security.runAsGroup = self.settings.proxyUID
        security.runAsNonRoot = true
        security.privileged = false
        security.allowPrivilegeEscalation = false
        security.readOnlyRootFilesystem = true
        security.capabilities = core.v1.Capabilities(drop: ["ALL"])
        proxy.securityContext = security
        if self.settings.nativeSidecars {
            proxy.restartPolicy = "Always"
        } else {
            // Classic sidecar: first in `containers`, and the kubelet waits for its postStart hook before it
            // starts the next container, so the app starts once the proxy is ready (as the startup probe makes
            // a native sidecar do).
            proxy.lifecycle = [
                "postStart": [
                    "exec": [
                        "command": [
                            "weft-proxy", "wait", "--status-port", .string(String(self.settings.statusPort)),
                            "--timeout", "120",
                        ]
                    ]
                ]
            ]
        }
        return proxy
    }

    /// `GET /healthz/ready` on the status port: 200 once the proxy has a config.
    func readyProbe(period: Int32, failures: Int32) -> core.v1.Probe {
        var get = core.v1.HTTPGetAction()
        get.path = "/healthz/ready"
        get.port = .int(Int64(self.settings.statusPort))
        var probe = core.v1.Probe()
        probe.httpGet = get
        probe.periodSeconds = period
        probe.timeoutSeconds = 1
        probe.failureThreshold = failures
        return probe
    }

    /// `weft-init`: `weft-proxy init` with the capture rules; root with NET_ADMIN and NET_RAW only, for the
    /// time it takes to write them.
    func captureContainer(arguments: [String]) -> core.v1.Container {
        var container = core.v1.Container()
        container.name = Sidecar.initContainer
        container.image = self.settings.proxyImage
        container.imagePullPolicy = self.settings.imagePullPolicy
        container.command = ["weft-proxy"]
        container.args = arguments
        var resources = core.v1.ResourceRequirements()
        resources.requests = ["cpu": "10m", "memory": "16Mi"]
        resources.limits = ["memory": "64Mi"]
        container.resources = resources
        var security = core.v1.SecurityContext()
        security.runAsUser = 0
        security.runAsGroup = 0
        security.runAsNonRoot = false
        security.privileged = false
        security.allowPrivilegeEscalation = false
        security.readOnlyRootFilesystem = true
        security.capabilities = core.v1.Capabilities(add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"])
        container.securityContext = security
        return container
    }

    /// The projected volume at `/var/run/secrets/weft`: `token` (the ServiceAccount token, audience `weft`,
    /// 1 h, rotated by the kubelet) and `ca.crt` (the trust bundle, from the ConfigMap in the pod's namespace).
    func identityVolume() -> core.v1.Volume {
        var volume = core.v1.Volume()
        volume.name = Sidecar.identityVolume
        volume.projected = [
            "sources": [
                ["serviceAccountToken": ["audience": "weft", "expirationSeconds": 3600, "path": "token"]],
                [
                    "configMap": [
                        "name": .string(self.settings.caBundleConfigMap),
                        "items": [["key": "ca.crt", "path": "ca.crt"]],
                    ]
                ],
            ]
        ]
        return volume
    }

    // MARK: - Probes

    /// Rewrites the HTTP liveness, readiness and startup probes of `container` to
    /// `GET /app-health/<container>/<livez|readyz|startupz>` on the proxy's status port, and records the
    /// original (port resolved to a number) under that path in `probes`.
    mutating func rewriteProbes(
        of container: inout core.v1.Container, into probes: inout [String: JSONValue], rewritten: inout [String]
    ) {
        let kinds: [(WritableKeyPath<core.v1.ContainerFields, core.v1.Probe?>, String, String)] = [
            (\.livenessProbe, "livenessProbe", "livez"), (\.readinessProbe, "readinessProbe", "readyz"),
            (\.startupProbe, "startupProbe", "startupz"),
        ]
        for (keyPath, field, suffix) in kinds {
            guard var probe = container.fields[keyPath: keyPath], let get = probe.httpGet else { continue }
            let port: Int64
            switch get.port {
            case .int(let number):
                port = number
            case .string(let name):
                guard let number = container.ports?.first(where: { $0.name == name })?.containerPort else {
                    self.warn(
                        "container \(container.name) \(field): port \"\(name)\" is not one of its ports; "
                            + "the probe is left as it is")
                    continue
                }
                port = Int64(number)
            }
            var original: JSONObject = [
                "path": .string(get.path ?? "/"), "port": .int(port), "scheme": .string(get.scheme ?? "HTTP"),
            ]
            if let host = get.host { original["host"] = .string(host) }
            if let headers = get.httpHeaders { original["httpHeaders"] = .array(headers) }
            let path = "/app-health/\(container.name)/\(suffix)"
            var entry: JSONObject = ["httpGet": .object(original)]
            if let timeout = probe.timeoutSeconds { entry["timeoutSeconds"] = .int(Int64(timeout)) }
            probes[path] = .object(entry)
            var replacement = core.v1.HTTPGetAction()
            replacement.path = path
            replacement.port = .int(Int64(self.settings.statusPort))
            replacement.scheme = "HTTP"
            probe.httpGet = replacement
            container.fields[keyPath: keyPath] = probe
            rewritten.append("\(container.name).\(field)")
        }
    }

    // MARK: - Helpers

    mutating func warn(_ message: String) {
        self.warnings.append(message)
    }

    static func env(_ name: String, _ value: String) -> core.v1.EnvVar {
        var variable = core.v1.EnvVar()
        variable.name = name
        variable.value = value
        return variable
    }

    static func fieldEnv(_ name: String, _ path: String) -> core.v1.EnvVar {
        var variable = core.v1.EnvVar()
        variable.name = name
        variable.valueFrom = ["fieldRef": ["fieldPath": .string(path)]]
        return variable
    }
}
