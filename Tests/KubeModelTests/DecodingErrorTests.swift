import Foundation
import KubeModel
import Testing

/// The decoding error's field path and message, whichever case it is.
func describe(_ error: any Error) -> (path: String, message: String)? {
    guard let error = error as? DecodingError else { return nil }
    switch error {
    case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
        return (context.codingPath.fieldPath, context.debugDescription)
    case .keyNotFound(let key, let context):
        return ((context.codingPath + [key]).fieldPath, context.debugDescription)
    @unknown default:
        return nil
    }
}

/// Decodes `json` as a Pod with both decoders and returns both errors' (path, message).
func podErrors(_ json: String) -> [(path: String, message: String)?] {
    var result: [(path: String, message: String)?] = []
    do {
        _ = try JSONDecoder().decode(core.v1.Pod.self, from: Data(json.utf8))
        result.append(nil)
    } catch {
        result.append(describe(error))
    }
    do {
        _ = try JSONValueDecoder().decode(core.v1.Pod.self, from: try JSONValue.parse(Data(json.utf8)))
        result.append(nil)
    } catch {
        result.append(describe(error))
    }
    return result
}

/// A pod whose second container's first port is `port` (JSON text).
func podWithPort(_ port: String) -> String {
    """
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
     "spec": {"containers": [
       {"name": "a", "ports": [{"containerPort": 80}]},
       {"name": "b", "ports": [{"containerPort": \(port), "hostIP": "0.0.0.0"}]}
     ]}}
    """
}

@Suite("Decoding errors name the field")
struct DecodingErrorTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var json: String
        var path: String
        var message: String
        var testDescription: String { self.name }
    }

    static let cases: [Case] = [
        Case(
            name: "string for an integer", json: podWithPort(#""http""#),
            path: "spec.containers[1].ports[0].containerPort", message: "expected an integer, found a string"),
        Case(
            name: "fraction for an integer", json: podWithPort("80.5"),
            path: "spec.containers[1].ports[0].containerPort", message: "expected an integer, found a number"),
        Case(
            name: "Int32 overflow", json: podWithPort("2147483648"),
            path: "spec.containers[1].ports[0].containerPort",
            message: "2147483648 is out of range -2147483648...2147483647"),
        Case(
            name: "Int32 underflow", json: podWithPort("-2147483649"),
            path: "spec.containers[1].ports[0].containerPort",
            message: "-2147483649 is out of range -2147483648...2147483647"),
        Case(
            name: "null for a required integer", json: podWithPort("null"),
            path: "spec.containers[1].ports[0].containerPort", message: "expected an integer, found null"),
        Case(
            name: "missing required field",
            json: #"{"metadata": {}, "spec": {"containers": [{"name": "a"}, {"image": "b"}]}}"#,
            path: "spec.containers[1].name", message: #"required field "name" is missing"#),
        Case(
            name: "missing required list",
            json: #"{"metadata": {"name": "p"}, "spec": {"nodeName": "n"}}"#,
            path: "spec.containers", message: #"required field "containers" is missing"#),
        Case(
            name: "object for a string",
            json: #"{"metadata": {"name": {"first": "p"}}}"#,
            path: "metadata.name", message: "expected a string, found an object"),
        Case(
            name: "array for an object",
            json: #"{"metadata": {"name": "p"}, "spec": []}"#,
            path: "spec", message: "expected an object, found an array"),
        Case(
            name: "object for an array",
            json: #"{"metadata": {"name": "p"}, "spec": {"containers": {"name": "a"}}}"#,
            path: "spec.containers", message: "expected an array, found an object"),
        Case(
            name: "number for a boolean",
            json: #"{"metadata": {"name": "p"}, "spec": {"containers": [], "hostNetwork": 1}}"#,
            path: "spec.hostNetwork", message: "expected a boolean, found a number"),
        Case(
            name: "number for a label value",
            json: #"{"metadata": {"name": "p", "labels": {"version": 2}}}"#,
            path: "metadata.labels.version", message: "expected a string, found a number"),
        Case(
            name: "boolean for an int-or-string",
            json:
                #"{"metadata": {}, "spec": {"containers": [{"name": "a", "livenessProbe": {"tcpSocket": {"port": true}}}]}}"#,
            path: "spec.containers[0].livenessProbe.tcpSocket.port", message: "expected a string, found a boolean"),
        Case(
            name: "Int64 field given a string",
            json: #"{"metadata": {"name": "p", "generation": "3"}}"#,
            path: "metadata.generation", message: "expected an integer, found a string"),
    ]

    @Test(arguments: Self.cases)
    func pathAndMessage(_ test: Case) throws {
        for (decoder, error) in zip(["JSONDecoder", "JSONValueDecoder"], podErrors(test.json)) {
            let error = try #require(error, "\(decoder) accepted the input")
            #expect(error.path == test.path, "\(decoder)")
            #expect(error.message == test.message, "\(decoder)")
        }
    }

    @Test("the largest Int32 and an integral double are accepted")
    func boundaries() throws {
        let pod = try JSONDecoder().decode(core.v1.Pod.self, from: Data(podWithPort("2147483647").utf8))
        #expect(pod.spec?.containers[1].ports?[0].containerPort == Int32.max)
        let value = try JSONValueDecoder().decode(
            core.v1.Pod.self, from: try JSONValue.parse(Data(podWithPort("8080.0").utf8)))
        #expect(value.spec?.containers[1].ports?[0].containerPort == 8080)
    }

    @Test("a mismatch is a typeMismatch and overflow is dataCorrupted")
    func errorCases() throws {
        let value = try JSONValue.parse(Data(podWithPort(#""http""#).utf8))
        #expect {
            try JSONValueDecoder().decode(core.v1.Pod.self, from: value)
        } throws: { error in
            guard case .typeMismatch = error as? DecodingError else { return false }
            return true
        }
        let overflow = try JSONValue.parse(Data(podWithPort("4294967296").utf8))
        #expect {
            try JSONValueDecoder().decode(core.v1.Pod.self, from: overflow)
        } throws: { error in
            guard case .dataCorrupted = error as? DecodingError else { return false }
            return true
        }
    }

    @Test("plain Codable types decoded by JSONValueDecoder also carry the path")
    func plainTypes() throws {
        let value: JSONValue = [
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": ["token": "t", "audiences": ["a", 7]],
        ]
        #expect {
            try JSONValueDecoder().decode(authentication.v1.TokenReview.self, from: value)
        } throws: { error in
            describe(error)?.path == "spec.audiences[1]"
                && describe(error)?.message == "expected a string, found a number"
        }
        let lease: JSONValue = ["metadata": ["name": "l"], "spec": ["leaseDurationSeconds": 1.5]]
        #expect {
            try JSONValueDecoder().decode(coordination.v1.Lease.self, from: lease)
        } throws: { error in
            describe(error)?.path == "spec.leaseDurationSeconds"
        }
    }
}
