extension core.v1 {
    /// A Pod. Every part of it the injector may touch is `Extensible`, so no user field is ever dropped.
    public typealias Pod = Extensible<PodFields>

    public struct PodFields: KubeResourceFields {
        public static let apiVersion = "v1"
        public static let kind = "Pod"
        public static let plural = "pods"

        public var apiVersion: String?
        public var kind: String?
        public var metadata = meta.v1.ObjectMeta()
        public var spec: PodSpec?
        public var status: PodStatus?

        public init() {}
    }

    public typealias PodSpec = Extensible<PodSpecFields>

    public struct PodSpecFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var containers: [Container] = []
        public var initContainers: [Container]?
        public var volumes: [Volume]?
        public var serviceAccountName: String?
        public var nodeName: String?
        public var hostNetwork: Bool?
        public var securityContext: PodSecurityContext?
        public var terminationGracePeriodSeconds: Int64?

        public init() {}
    }

    /// `PodTemplateSpec`, as Deployments carry it.
    public typealias PodTemplateSpec = Extensible<PodTemplateSpecFields>

    public struct PodTemplateSpecFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var metadata: meta.v1.ObjectMeta?
        public var spec: PodSpec?

        public init() {}
    }

    public typealias Container = Extensible<ContainerFields>

    public struct ContainerFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var name: String = ""
        public var image: String?
        public var imagePullPolicy: String?
        public var command: [String]?
        public var args: [String]?
        public var ports: [ContainerPort]?
        public var env: [EnvVar]?
        public var resources: ResourceRequirements?
        public var volumeMounts: [VolumeMount]?
        public var livenessProbe: Probe?
        public var readinessProbe: Probe?
        public var startupProbe: Probe?
        public var securityContext: SecurityContext?
        /// `postStart` and `preStop` hooks, kept as they came.
        public var lifecycle: JSONValue?
        /// `Always` on an init container makes it a native sidecar (Kubernetes 1.29+).
        public var restartPolicy: String?

        public init() {}
    }

    public typealias ContainerPort = Extensible<ContainerPortFields>

    public struct ContainerPortFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var name: String?
        public var containerPort: Int32 = 0
        public var `protocol`: String?
        public var hostPort: Int32?

        public init() {}
    }

    public typealias EnvVar = Extensible<EnvVarFields>

    /// An environment variable; `valueFrom` is kept as it came.
    public struct EnvVarFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var name: String = ""
        public var value: String?
        public var valueFrom: JSONValue?

        public init() {}
    }

    public typealias ResourceRequirements = Extensible<ResourceRequirementsFields>

    public struct ResourceRequirementsFields: Codable, Hashable, Sendable, EmptyInitializable {
        /// Quantities as written: a string (`100m`, `128Mi`) or a number (`0.5`, `2`), both valid in Kubernetes.
        public var limits: [String: JSONValue]?
        public var requests: [String: JSONValue]?

        public init() {}
    }

    public typealias VolumeMount = Extensible<VolumeMountFields>

    public struct VolumeMountFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var name: String = ""
        public var mountPath: String = ""
        public var readOnly: Bool?
        public var subPath: String?

        public init() {}
    }

    /// A volume: its name is modelled, its source (emptyDir, secret, projected, ...) kept as it came.
    public typealias Volume = Extensible<VolumeFields>

    public struct VolumeFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var name: String = ""
        public var emptyDir: JSONValue?
        public var projected: JSONValue?
        public var secret: JSONValue?
        public var configMap: JSONValue?

        public init() {}
    }

    public typealias Probe = Extensible<ProbeFields>

    public struct ProbeFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var httpGet: HTTPGetAction?
        public var tcpSocket: TCPSocketAction?
        public var grpc: JSONValue?
        public var exec: JSONValue?
        public var initialDelaySeconds: Int32?
        public var periodSeconds: Int32?
        public var timeoutSeconds: Int32?
        public var successThreshold: Int32?
        public var failureThreshold: Int32?

        public init() {}
    }

    public typealias HTTPGetAction = Extensible<HTTPGetActionFields>

    public struct HTTPGetActionFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var path: String?
        public var port: IntOrString = .int(0)
        public var host: String?
        public var scheme: String?
        public var httpHeaders: [JSONValue]?

        public init() {}
    }

    public typealias TCPSocketAction = Extensible<TCPSocketActionFields>

    public struct TCPSocketActionFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var port: IntOrString = .int(0)
        public var host: String?

        public init() {}
    }

    public typealias PodSecurityContext = Extensible<PodSecurityContextFields>

    public struct PodSecurityContextFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var runAsUser: Int64?
        public var runAsGroup: Int64?
        public var runAsNonRoot: Bool?
        public var fsGroup: Int64?

        public init() {}
    }

    public typealias SecurityContext = Extensible<SecurityContextFields>

    public struct SecurityContextFields: Codable, Hashable, Sendable, EmptyInitializable {
        public var runAsUser: Int64?
        public var runAsGroup: Int64?
        public var runAsNonRoot: Bool?
        public var privileged: Bool?
        public var allowPrivilegeEscalation: Bool?
        public var readOnlyRootFilesystem: Bool?
        public var capabilities: Capabilities?

        public init() {}
    }

    public struct Capabilities: Codable, Hashable, Sendable {
        public var add: [String]?
        public var drop: [String]?

        public init(add: [String]? = nil, drop: [String]? = nil) {
            self.add = add
            self.drop = drop
        }
    }

    public typealias PodStatus = Extensible<PodStatusFields>

    public struct PodStatusFields: Codable, Hashable, Sendable, EmptyInitializable {
        /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
        public var phase: String?
        public var podIP: String?
        public var podIPs: [PodIP]?
        public var hostIP: String?
        public var conditions: [PodCondition]?

        public init() {}
    }

    public struct PodIP: Codable, Hashable, Sendable {
        public var ip: String

        public init(ip: String) { self.ip = ip }
    }

    public struct PodCondition: Codable, Hashable, Sendable {
        public var type: String
        public var status: String
        public var lastTransitionTime: String?
        public var reason: String?
        public var message: String?

        public init(type: String, status: String) {
            self.type = type
            self.status = status
        }
    }
}

extension core.v1.PodFields {
    /// Whether the pod reports the `Ready` condition as True.
    public var isReady: Bool {
        self.status?.conditions?.contains { $0.type == "Ready" && $0.status == "True" } ?? false
    }
}
