import KubeModel
import Testing
import WeftAPI
import WeftCompiler
import WeftManifests

@Suite("Manifest generations")
struct ManifestGenerationsTests {
    static func route(_ name: String, timeout: String, generation: Int64? = nil) -> weft.v1alpha1.VirtualService {
        var vs = weft.v1alpha1.VirtualService()
        vs.metadata.namespace = "shop"
        vs.metadata.name = name
        vs.metadata.generation = generation
        vs.spec.hosts = [name]
        var http = weft.v1alpha1.HTTPRoute()
        http.timeout = timeout
        vs.spec.http = [http]
        return vs
    }

    func generations(_ snapshot: WeftSnapshot) -> [String: Int64] {
        Dictionary(
            uniqueKeysWithValues: snapshot.virtualServices.map {
                ($0.metadata.name ?? "", $0.metadata.generation ?? 0)
            })
    }

    @Test("1 when first seen (a generation in the file is ignored); +1 on a spec change only")
    func generations() {
        let first = ManifestGenerations.assign(
            WeftSnapshot(virtualServices: [
                Self.route("a", timeout: "1s", generation: 7), Self.route("b", timeout: "1s"),
            ]),
            previous: nil)
        #expect(self.generations(first) == ["a": 1, "b": 1])

        // a: spec changed; b: only a label; c: new.
        var relabelled = Self.route("b", timeout: "1s")
        relabelled.metadata.labels = ["team": "shop"]
        let second = ManifestGenerations.assign(
            WeftSnapshot(virtualServices: [Self.route("a", timeout: "2s"), relabelled, Self.route("c", timeout: "1s")]),
            previous: first)
        #expect(self.generations(second) == ["a": 2, "b": 1, "c": 1])

        // a removed and added back later starts over, as a new object does.
        let third = ManifestGenerations.assign(WeftSnapshot(virtualServices: [relabelled]), previous: second)
        let fourth = ManifestGenerations.assign(
            WeftSnapshot(virtualServices: [Self.route("a", timeout: "2s"), relabelled]), previous: third)
        #expect(self.generations(fourth) == ["a": 1, "b": 1])
    }
}
