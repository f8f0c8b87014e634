import KubeModel
import Testing

@Suite("JSON Patch (RFC 6902) diffs")
struct JSONPatchTests {
    @Test(
        "reference tokens escape ~ as ~0 and / as ~1",
        arguments: [
            ("weft.dev/status", "weft.dev~1status"), ("a~b", "a~0b"), ("~/", "~0~1"), ("~1", "~01"), ("plain", "plain"),
            ("", ""),
        ])
    func escape(_ token: String, _ escaped: String) {
        #expect(JSONPatch.escape(token) == escaped)
    }

    @Test("equal documents give no operations")
    func equal() {
        let document: JSONValue = ["a": [1, 2, ["b": "c"]], "d": nil]
        #expect(JSONPatch.diff(from: document, to: document).isEmpty)
    }

    @Test("a missing map or array is added whole; a new member of an existing map is added by key")
    func addMissing() {
        let old: JSONValue = ["metadata": ["name": "p"]]
        let new: JSONValue = ["metadata": ["name": "p", "annotations": ["weft.dev/status": "{}"]], "list": [1]]
        #expect(
            JSONPatch.diff(from: old, to: new).operations == [
                .init(op: .add, path: "/list", value: [1]),
                .init(op: .add, path: "/metadata/annotations", value: ["weft.dev/status": "{}"]),
            ])
        let withMap: JSONValue = ["metadata": ["annotations": ["a/b~c": "1"]]]
        let added: JSONValue = ["metadata": ["annotations": ["a/b~c": "1", "weft.dev/status": "{}"]]]
        #expect(
            JSONPatch.diff(from: withMap, to: added).operations == [
                .init(op: .add, path: "/metadata/annotations/weft.dev~1status", value: "{}")
            ])
        #expect(
            JSONPatch.diff(from: withMap, to: ["metadata": ["annotations": ["a/b~c": "2"]]]).operations == [
                .init(op: .replace, path: "/metadata/annotations/a~1b~0c", value: "2")
            ])
    }

    @Test("array elements inserted at the front, in the middle, at the end, or removed, keep the others")
    func arrays() {
        let old: JSONValue = ["xs": ["a", "b", "c"]]
        #expect(
            JSONPatch.diff(from: old, to: ["xs": ["p", "q", "a", "b", "c"]]).operations == [
                .init(op: .add, path: "/xs/0", value: "p"), .init(op: .add, path: "/xs/1", value: "q"),
            ])
        #expect(
            JSONPatch.diff(from: old, to: ["xs": ["a", "b", "c", "d"]]).operations == [
                .init(op: .add, path: "/xs/3", value: "d")
            ])
        #expect(
            JSONPatch.diff(from: old, to: ["xs": ["a", "m", "b", "c"]]).operations == [
                .init(op: .add, path: "/xs/1", value: "m")
            ])
        #expect(
            JSONPatch.diff(from: old, to: ["xs": ["a"]]).operations == [
                .init(op: .remove, path: "/xs/2"), .init(op: .remove, path: "/xs/1"),
            ])
        // A changed element is diffed inside.
        #expect(
            JSONPatch.diff(from: ["xs": [["n": 1, "k": "v"]]], to: ["xs": [["n": 2, "k": "v"]]]).operations == [
                .init(op: .replace, path: "/xs/0/n", value: 2)
            ])
    }

    @Test("a null member that disappears is not removed; one that gets a value is replaced")
    func nulls() {
        #expect(JSONPatch.diff(from: ["a": nil, "b": 1], to: ["b": 1]).isEmpty)
        #expect(
            JSONPatch.diff(from: ["a": nil], to: ["a": [1]]).operations == [.init(op: .replace, path: "/a", value: [1])]
        )
    }

    @Test("the JSON form has op, path and value")
    func json() {
        let patch = JSONPatch([.init(op: .add, path: "/a", value: 1), .init(op: .remove, path: "/b")])
        #expect(patch.json == [["op": "add", "path": "/a", "value": 1], ["op": "remove", "path": "/b"]])
    }
}
