import KubeModel
import WeftAPI
import WeftCompiler

/// A synthetic cluster for benchmarks and scale tests: `services` Services spread over `namespaces`, each with
/// `pods / services` pods (half v1, half v2) and an EndpointSlice; VirtualServices for the first
/// `virtualServices` Services (canary splits and header routes), DestinationPolicies with v1/v2 subsets for the
/// first `destinationPolicies`. Every namespace is injected.
public struct SyntheticCluster: Sendable {
    public var namespaces = 50
    public var services = 2_000
    public var pods = 10_000
    public var virtualServices = 1_000
    public var destinationPolicies = 500

    public init(
        namespaces: Int = 50, services: Int = 2_000, pods: Int = 10_000, virtualServices: Int = 1_000,
        destinationPolicies: Int = 500
    ) {
        self.namespaces = namespaces
        self.services = services
        self.pods = pods
        self.virtualServices = virtualServices
        self.destinationPolicies = destinationPolicies
    }

    public func namespace(ofService i: Int) -> String { "ns-\(i % self.namespaces)" }

    public func snapshot() -> WeftSnapshot {
        var snapshot = WeftSnapshot()
        for n in 0..<self.namespaces {
            var namespace = core.v1.Namespace.new(name: "ns-\(n)")
            namespace.metadata.labels = [WeftLabels.inject: "enabled"]
            snapshot.namespaces.append(namespace)
        }
        let podsPerService = max(1, self.pods / max(1, self.services))
        for s in 0..<self.services {
            let namespace = self.namespace(ofService: s)
            let name = "svc-\(s)"
            var service = core.v1.Service.new(namespace: namespace, name: name)
            var spec = core.v1.ServiceSpec()
            spec.selector = ["app": name]
            spec.clusterIP = "10.96.\(s / 250).\(s % 250 + 1)"
            var port = core.v1.ServicePort()
            port.name = "http"
            port.port = 80
            port.targetPort = .int(8080)
            spec.ports = [port]
            service.spec = spec
            snapshot.services.append(service)

            var slice = discovery.v1.EndpointSlice.new(namespace: namespace, name: "\(name)-abcde")
            slice.metadata.labels = [discovery.v1.serviceNameLabel: name]
            slice.ports = [discovery.v1.EndpointPort(name: "http", port: 8080, protocol: "TCP")]
            slice.endpoints = []
            for p in 0..<podsPerService {
                let index = s * podsPerService + p
                let ip = "10.\(index / 65_536 + 1).\(index / 256 % 256).\(index % 256)"
                let podName = "\(name)-\(p)"
                var pod = core.v1.Pod.new(namespace: namespace, name: podName)
                pod.metadata.labels = ["app": name, "version": p % 2 == 0 ? "v1" : "v2"]
                var podSpec = core.v1.PodSpec()
                podSpec.serviceAccountName = name
                var container = core.v1.Container()
                container.name = "app"
                var containerPort = core.v1.ContainerPort()
                containerPort.name = "http"
                containerPort.containerPort = 8080
                container.ports = [containerPort]
                podSpec.containers = [container]
                pod.spec = podSpec
                var status = core.v1.PodStatus()
                status.phase = "Running"
                status.podIP = ip
                status.podIPs = [core.v1.PodIP(ip: ip)]
                status.conditions = [core.v1.PodCondition(type: "Ready", status: "True")]
                pod.status = status
                snapshot.pods.append(pod)
                slice.endpoints?.append(
                    discovery.v1.Endpoint(
                        addresses: [ip], conditions: .init(ready: true, serving: true, terminating: false),
                        zone: "zone-\(p % 3)",
                        targetRef: core.v1.ObjectReference(kind: "Pod", namespace: namespace, name: podName)))
            }
            snapshot.endpointSlices.append(slice)
        }
        for s in 0..<min(self.virtualServices, self.services) {
            snapshot.virtualServices.append(self.virtualService(s, timeout: "2s"))
        }
        for s in 0..<min(self.destinationPolicies, self.services) {
            var dp = weft.v1alpha1.DestinationPolicy()
            dp.metadata.namespace = self.namespace(ofService: s)
            dp.metadata.name = "svc-\(s)"
            dp.metadata.generation = 1
            dp.spec.host = "svc-\(s)"
            var traffic = weft.v1alpha1.TrafficPolicy()
            traffic.loadBalancer = .init(simple: "LEAST_REQUEST")
            var outlier = weft.v1alpha1.OutlierDetection()
            outlier.consecutive5xxErrors = 5
            traffic.outlierDetection = outlier
            dp.spec.trafficPolicy = traffic
            dp.spec.subsets = [
                .init(name: "v1", labels: ["version": "v1"]), .init(name: "v2", labels: ["version": "v2"]),
            ]
            snapshot.destinationPolicies.append(dp)
        }
        return snapshot
    }

    /// The VirtualService of Service `s`: a header route to v2 and a 90/10 canary where a DestinationPolicy
    /// defines subsets, else a plain route with a timeout and retries.
    public func virtualService(_ s: Int, timeout: String) -> weft.v1alpha1.VirtualService {
        var vs = weft.v1alpha1.VirtualService()
        vs.metadata.namespace = self.namespace(ofService: s)
        vs.metadata.name = "svc-\(s)"
        vs.metadata.generation = 1
        vs.spec.hosts = ["svc-\(s)"]
        let host = "svc-\(s)"
        if s < self.destinationPolicies {
            var beta = weft.v1alpha1.HTTPRoute()
            beta.name = "beta"
            var match = weft.v1alpha1.HTTPMatchRequest()
            match.headers = ["x-beta": .init(exact: "1")]
            match.uri = .init(prefix: "/api")
            beta.match = [match]
            beta.route = [.init(destination: .init(host: host, subset: "v2"))]
            var canary = weft.v1alpha1.HTTPRoute()
            canary.name = "canary"
            canary.route = [
                .init(destination: .init(host: host, subset: "v1"), weight: 90),
                .init(destination: .init(host: host, subset: "v2"), weight: 10),
            ]
            canary.timeout = timeout
            vs.spec.http = [beta, canary]
        } else {
            var route = weft.v1alpha1.HTTPRoute()
            route.route = [.init(destination: .init(host: host))]
            route.timeout = timeout
            var retries = weft.v1alpha1.HTTPRetry(attempts: 2)
            retries.perTryTimeout = "500ms"
            route.retries = retries
            vs.spec.http = [route]
        }
        return vs
    }
}
