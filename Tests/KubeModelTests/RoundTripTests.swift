import Foundation
import KubeModel
import Testing

/// One kind of object and a realistic JSON form of it.
struct RoundTripCase: Sendable, CustomTestStringConvertible {
    let name: String
    let json: String
    /// Decodes with Foundation's `JSONDecoder`, encodes with `JSONEncoder`, and reads the result back.
    let viaFoundation: @Sendable (Data) throws -> JSONValue
    /// Decodes with `JSONValueDecoder` from a `JSONValue`, encodes with `JSONEncoder`.
    let viaValueDecoder: @Sendable (JSONValue) throws -> JSONValue

    init<T: Codable & SendableMetatype>(_ type: T.Type, _ name: String, _ json: String) {
        self.name = name
        self.json = json
        self.viaFoundation = { data in
            let object = try JSONDecoder().decode(T.self, from: data)
            return try JSONValue.parse(try JSONEncoder().encode(object))
        }
        self.viaValueDecoder = { value in
            let object = try JSONValueDecoder().decode(T.self, from: value)
            return try JSONValue.from(encodable: object)
        }
    }

    var testDescription: String { self.name }

    var data: Data { Data(self.json.utf8) }

    static let all: [RoundTripCase] = [
        RoundTripCase(core.v1.Pod.self, "Pod", Fixtures.pod),
        RoundTripCase(core.v1.Service.self, "Service", Fixtures.service),
        RoundTripCase(apps.v1.Deployment.self, "Deployment", Fixtures.deployment),
        RoundTripCase(discovery.v1.EndpointSlice.self, "EndpointSlice", Fixtures.endpointSlice),
        RoundTripCase(core.v1.Namespace.self, "Namespace", Fixtures.namespace),
        RoundTripCase(core.v1.ConfigMap.self, "ConfigMap", Fixtures.configMap),
        RoundTripCase(core.v1.Secret.self, "Secret", Fixtures.secret),
        RoundTripCase(coordination.v1.Lease.self, "Lease", Fixtures.lease),
        RoundTripCase(core.v1.Event.self, "Event", Fixtures.event),
        RoundTripCase(admission.v1.AdmissionReview.self, "AdmissionReview", Fixtures.admissionReview),
        RoundTripCase(authentication.v1.TokenReview.self, "TokenReview", Fixtures.tokenReview),
    ]
}

/// Paths of every member, recursively, so that a difference names the member that was lost or changed.
func differences(_ expected: JSONValue, _ actual: JSONValue, path: String = "") -> [String] {
    switch (expected, actual) {
    case (.object(let left), .object(let right)):
        var result: [String] = []
        for key in Set(left.keys).union(right.keys).sorted() {
            let child = path.isEmpty ? key : "\(path).\(key)"
            switch (left[key], right[key]) {
            case (let l?, let r?): result += differences(l, r, path: child)
            case (_?, nil): result.append("\(child): lost")
            case (nil, _?): result.append("\(child): added")
            case (nil, nil): break
            }
        }
        return result
    case (.array(let left), .array(let right)) where left.count == right.count:
        return zip(left, right).enumerated().flatMap { differences($1.0, $1.1, path: "\(path)[\($0)]") }
    default:
        return expected == actual ? [] : ["\(path): \(expected) != \(actual)"]
    }
}

@Suite("Unknown fields survive a round trip")
struct RoundTripTests {
    @Test("decode with JSONDecoder, encode: semantically identical", arguments: RoundTripCase.all)
    func foundationRoundTrip(_ fixture: RoundTripCase) throws {
        let original = try JSONValue.parse(fixture.data)
        let encoded = try fixture.viaFoundation(fixture.data)
        #expect(differences(original, encoded) == [])
        #expect(encoded == original)
    }

    @Test("decode with JSONValueDecoder, encode: semantically identical", arguments: RoundTripCase.all)
    func valueDecoderRoundTrip(_ fixture: RoundTripCase) throws {
        let original = try JSONValue.parse(fixture.data)
        let encoded = try fixture.viaValueDecoder(original)
        #expect(differences(original, encoded) == [])
        #expect(encoded == original)
    }

    @Test("both decoders give equal objects", arguments: RoundTripCase.all)
    func decodersAgree(_ fixture: RoundTripCase) throws {
        let original = try JSONValue.parse(fixture.data)
        #expect(try fixture.viaFoundation(fixture.data) == fixture.viaValueDecoder(original))
    }

    @Test("the fixtures do hold unknown members at every level of a Pod")
    func podUnknownFieldsAreWhereExpected() throws {
        let pod = try JSONDecoder().decode(core.v1.Pod.self, from: Data(Fixtures.pod.utf8))
        #expect(pod.unknownFields.keys.sorted() == ["x-unknown-top-level"])
        #expect(pod.metadata.unknownFields.keys.sorted() == ["managedFields"])
        let spec = try #require(pod.spec)
        #expect(
            spec.unknownFields.keys.sorted() == [
                "affinity", "dnsPolicy", "enableServiceLinks", "priority", "restartPolicy", "schedulerName",
                "tolerations",
            ])
        #expect(spec.containers.map(\.name) == ["web", "metrics"])
        let web = spec.containers[0]
        #expect(
            web.unknownFields.keys.sorted() == [
                "envFrom", "terminationMessagePath", "terminationMessagePolicy",
            ])
        // Modelled (the injector writes a postStart hook), kept as it came.
        #expect(web.lifecycle == ["preStop": ["exec": ["command": ["sleep", "5"]]]])
        #expect(web.ports?[0].containerPort == 8080)
        #expect(web.ports?[0].unknownFields == ["hostIP": "0.0.0.0"])
        #expect(web.env?[0].valueFrom == ["fieldRef": ["apiVersion": "v1", "fieldPath": "metadata.name"]])
        #expect(web.resources?.unknownFields.keys.sorted() == ["claims"])
        #expect(web.readinessProbe?.httpGet?.port == .string("http"))
        #expect(web.readinessProbe?.unknownFields.keys.sorted() == ["terminationGracePeriodSeconds"])
        #expect(web.livenessProbe?.tcpSocket?.port == .int(8080))
        #expect(web.securityContext?.unknownFields.keys.sorted() == ["seccompProfile"])
        #expect(spec.volumes?.first?.unknownFields.keys.sorted() == ["csi"])
        #expect(spec.initContainers?.first?.unknownFields.keys.sorted() == ["terminationMessagePolicy", "workingDir"])
        #expect(pod.status?.unknownFields.keys.sorted() == ["containerStatuses", "hostIPs", "qosClass", "startTime"])
        #expect(pod.status?.phase == "Running")
        #expect(pod.fields.isReady)
    }

    @Test("appending a container keeps every unknown field", arguments: [false, true])
    func modifiedPodKeepsUnknownFields(useValueDecoder: Bool) throws {
        let original = try JSONValue.parse(Data(Fixtures.pod.utf8))
        var pod =
            useValueDecoder
            ? try JSONValueDecoder().decode(core.v1.Pod.self, from: original)
            : try JSONDecoder().decode(core.v1.Pod.self, from: Data(Fixtures.pod.utf8))
        var sidecar = core.v1.Container()
        sidecar.name = "weft-proxy"
        sidecar.image = "ghcr.io/weft/proxy:0.1"
        var port = core.v1.ContainerPort()
        port.name = "weft-inbound"
        port.containerPort = 15006
        sidecar.ports = [port]
        pod.spec?.containers.append(sidecar)
        pod.metadata.annotations?["weft.dev/injected"] = "true"

        let encoded = try JSONValue.from(encodable: pod)

        // Expected: the original with exactly these two changes.
        guard case .object(var top) = original, case .object(var spec) = top["spec"],
            case .array(var containers) = spec["containers"], case .object(var metadata) = top["metadata"],
            case .object(var annotations) = metadata["annotations"]
        else {
            Issue.record("fixture is not shaped as expected")
            return
        }
        containers.append([
            "name": "weft-proxy", "image": "ghcr.io/weft/proxy:0.1",
            "ports": [["name": "weft-inbound", "containerPort": 15006]],
        ])
        spec["containers"] = .array(containers)
        top["spec"] = .object(spec)
        annotations["weft.dev/injected"] = "true"
        metadata["annotations"] = .object(annotations)
        top["metadata"] = .object(metadata)

        #expect(differences(.object(top), encoded) == [])
    }

    @Test("a Deployment's pod template keeps unknown fields when its containers change")
    func deploymentTemplateEdit() throws {
        var deployment = try JSONDecoder().decode(apps.v1.Deployment.self, from: Data(Fixtures.deployment.utf8))
        #expect(deployment.spec?.template.spec?.unknownFields.keys.sorted() == ["dnsPolicy", "tolerations"])
        #expect(deployment.spec?.unknownFields.keys.sorted() == ["progressDeadlineSeconds", "revisionHistoryLimit"])
        #expect(deployment.spec?.selector.matchLabels == ["app": "web"])
        deployment.spec?.template.spec?.containers[0].image = "ghcr.io/example/web:1.5.0"
        let encoded = try JSONValue.from(encodable: deployment)
        let lines = differences(try JSONValue.parse(Data(Fixtures.deployment.utf8)), encoded)
        #expect(
            lines == [
                #"spec.template.spec.containers[0].image: string("ghcr.io/example/web:1.4.2") != string("ghcr.io/example/web:1.5.0")"#
            ])
    }

    @Test("AdmissionReview keeps request.object raw, nulls and int64 included")
    func admissionObjectIsRaw() throws {
        let review = try JSONDecoder().decode(
            admission.v1.AdmissionReview.self, from: Data(Fixtures.admissionReview.utf8))
        let object = try #require(review.request?.object)
        #expect(object["metadata"]?["creationTimestamp"] == .null)
        #expect(object["spec"]?["priority"] == .int(Int64.max))
        #expect(object["spec"]?["overhead"]?["cpu"] == .double(0.25))
        #expect(review.request?.operation == "UPDATE")
        #expect(review.request?.kind == admission.v1.GroupVersionKind(group: "", version: "v1", kind: "Pod"))
        #expect(review.request?.userInfo?.extra?["authentication.kubernetes.io/pod-name"] == ["kcm-0"])
        let pod = try JSONValueDecoder().decode(core.v1.Pod.self, from: object)
        #expect(pod.metadata.generateName == "web-7d9f8c6b5-")
        #expect(pod.spec?.containers.first?.resources?.limits == nil)
    }

    @Test("renewing a Lease keeps spec fields of newer Kubernetes versions")
    func leaseRenewal() throws {
        var lease = try JSONDecoder().decode(coordination.v1.Lease.self, from: Data(Fixtures.lease.utf8))
        lease.spec?.renewTime = "2024-11-20T09:20:43.000000Z"
        let lines = differences(try JSONValue.parse(Data(Fixtures.lease.utf8)), try JSONValue.from(encodable: lease))
        #expect(
            lines == [
                #"spec.renewTime: string("2024-11-20T09:20:33.123456Z") != string("2024-11-20T09:20:43.000000Z")"#
            ])
        let built = coordination.v1.LeaseSpec(holderIdentity: "me", leaseDurationSeconds: 15)
        #expect(try JSONValue.from(encodable: built) == ["holderIdentity": "me", "leaseDurationSeconds": 15])
    }

    @Test("resource quantities may be strings or numbers, as Kubernetes accepts", arguments: [false, true])
    func numericQuantities(useValueDecoder: Bool) throws {
        let json = #"""
            {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a",
              "resources": {"requests": {"cpu": 0.5, "memory": "64Mi"}, "limits": {"cpu": 2, "memory": 1e9}}}]}}
            """#
        let original = try JSONValue.parse(Data(json.utf8))
        let pod =
            useValueDecoder
            ? try JSONValueDecoder().decode(core.v1.Pod.self, from: original)
            : try JSONDecoder().decode(core.v1.Pod.self, from: Data(json.utf8))
        #expect(try JSONValue.from(encodable: pod) == original)
    }

    @Test("a modelled field that is null reads as absent; an unknown null member is kept")
    func nullModelledFieldReadsAsAbsent() throws {
        let json =
            #"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "creationTimestamp": null}, "x": null}"#
        let namespace = try JSONDecoder().decode(core.v1.Namespace.self, from: Data(json.utf8))
        #expect(namespace.metadata.creationTimestamp == nil)
        #expect(namespace.unknownFields == ["x": .null])
        let encoded = try JSONValue.from(encodable: namespace)
        #expect(encoded == ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": "a"], "x": nil])
    }

    @Test("objects built in code encode only what was set")
    func newObject() throws {
        var configMap = core.v1.ConfigMap.new(namespace: "weft-system", name: "weft-config")
        configMap.data = ["trustDomain": "example.org"]
        #expect(configMap.key == ObjectKey(namespace: "weft-system", name: "weft-config"))
        #expect(
            try JSONValue.from(encodable: configMap) == [
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": ["name": "weft-config", "namespace": "weft-system"],
                "data": ["trustDomain": "example.org"],
            ])
        #expect(core.v1.Namespace.isNamespaced == false)
        #expect(core.v1.Pod.isNamespaced)
        #expect(apps.v1.Deployment.group == "apps")
        #expect(core.v1.Pod.group == "")
        #expect(discovery.v1.EndpointSlice.plural == "endpointslices")
        #expect(core.v1.Namespace.new(name: "shop").key.description == "shop")
    }
}
