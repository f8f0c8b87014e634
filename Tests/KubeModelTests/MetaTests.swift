import Foundation
import KubeModel
import Testing

@Suite("Condition merging")
struct ConditionTests {
    typealias Condition = meta.v1.Condition

    let existing = [
        Condition(
            type: "Accepted", status: .true, observedGeneration: 1, lastTransitionTime: "2024-01-01T00:00:00Z",
            reason: "Accepted", message: "ok"),
        Condition(
            type: "ResolvedRefs", status: .false, observedGeneration: 1, lastTransitionTime: "2024-01-02T00:00:00Z",
            reason: "BackendNotFound", message: "no Service catalgo"),
    ]
    let now = "2024-06-01T12:00:00Z"

    @Test("an unchanged status keeps lastTransitionTime, even when reason, message and generation change")
    func unchangedStatus() {
        let desired = [
            Condition(type: "Accepted", status: .true, observedGeneration: 2, reason: "Accepted", message: "still ok")
        ]
        let merged = self.existing.merging(desired, now: self.now)
        #expect(
            merged == [
                Condition(
                    type: "Accepted", status: .true, observedGeneration: 2, lastTransitionTime: "2024-01-01T00:00:00Z",
                    reason: "Accepted", message: "still ok")
            ])
    }

    @Test("a changed status gets now", arguments: [Condition.Status.true, .unknown])
    func changedStatus(status: Condition.Status) {
        let desired = [Condition(type: "ResolvedRefs", status: status, reason: "R", message: "m")]
        let merged = self.existing.merging(desired, now: self.now)
        #expect(merged.count == 1)
        #expect(merged[type: "ResolvedRefs"]?.lastTransitionTime == self.now)
        #expect(merged[type: "ResolvedRefs"]?.status == status)
    }

    @Test("a new condition gets now; conditions no longer desired are dropped; order follows desired")
    func newAndDropped() {
        let desired = [
            Condition(type: "Programmed", status: .true, reason: "Programmed", message: "m"),
            Condition(type: "Accepted", status: .false, reason: "Invalid", message: "m"),
        ]
        let merged = self.existing.merging(desired, now: self.now)
        #expect(merged.map(\.type) == ["Programmed", "Accepted"])
        #expect(merged.map(\.lastTransitionTime) == [self.now, self.now])
        #expect(merged[type: "ResolvedRefs"] == nil)
    }

    @Test("an existing condition without a time gets now")
    func existingWithoutTime() {
        let old = [Condition(type: "Accepted", status: .true, reason: "Accepted", message: "ok")]
        let desired = [
            Condition(type: "Accepted", status: .true, lastTransitionTime: "ignored", reason: "Accepted", message: "ok")
        ]
        #expect(old.merging(desired, now: self.now)[0].lastTransitionTime == self.now)
    }

    @Test("merging is idempotent")
    func idempotent() {
        let desired = [Condition(type: "Accepted", status: .false, reason: "Invalid", message: "m")]
        let once = self.existing.merging(desired, now: self.now)
        #expect(once.merging(desired, now: "2025-01-01T00:00:00Z") == once)
    }

    @Test("status encodes as True/False/Unknown")
    func statusEncoding() throws {
        let condition = Condition(
            type: "Accepted", status: .unknown, lastTransitionTime: "t", reason: "r", message: "m")
        #expect(
            try JSONValue.from(encodable: condition) == [
                "type": "Accepted", "status": "Unknown", "lastTransitionTime": "t", "reason": "r", "message": "m",
            ])
        #expect(throws: DecodingError.self) {
            try JSONValueDecoder().decode(
                Condition.self,
                from: [
                    "type": "Accepted", "status": "true", "lastTransitionTime": "t", "reason": "r", "message": "m",
                ])
        }
    }
}

@Suite("LabelSelector")
struct LabelSelectorTests {
    typealias Selector = meta.v1.LabelSelector
    typealias Requirement = meta.v1.LabelSelectorRequirement

    static let labels = ["app": "catalog", "version": "v2", "tier": "backend"]

    @Test(
        "matchLabels: every pair must be present",
        arguments: [
            (["app": "catalog"], true),
            (["app": "catalog", "version": "v2"], true),
            (["app": "catalog", "version": "v1"], false),
            (["team": "x"], false),
            ([:], true),
        ])
    func matchLabels(_ matchLabels: [String: String], _ expected: Bool) {
        #expect(Selector(matchLabels: matchLabels).matches(Self.labels) == expected)
    }

    @Test(
        "matchExpressions",
        arguments: [
            (Requirement(key: "version", operator: "In", values: ["v1", "v2"]), true),
            (Requirement(key: "version", operator: "In", values: ["v1"]), false),
            (Requirement(key: "missing", operator: "In", values: ["v1"]), false),
            (Requirement(key: "version", operator: "In", values: []), false),
            (Requirement(key: "version", operator: "NotIn", values: ["v1"]), true),
            (Requirement(key: "version", operator: "NotIn", values: ["v2"]), false),
            (Requirement(key: "missing", operator: "NotIn", values: ["v1"]), true),
            (Requirement(key: "tier", operator: "Exists"), true),
            (Requirement(key: "missing", operator: "Exists"), false),
            (Requirement(key: "missing", operator: "DoesNotExist"), true),
            (Requirement(key: "tier", operator: "DoesNotExist"), false),
            (Requirement(key: "tier", operator: "Gt", values: ["1"]), false),
            (Requirement(key: "missing", operator: "Bogus"), false),
            (Requirement(key: "tier", operator: "in", values: ["backend"]), false),
        ])
    func expression(_ requirement: Requirement, _ expected: Bool) {
        #expect(requirement.matches(Self.labels) == expected)
        #expect(Selector(matchExpressions: [requirement]).matches(Self.labels) == expected)
    }

    @Test("matchLabels AND every expression")
    func conjunction() {
        let selector = Selector(
            matchLabels: ["app": "catalog"],
            matchExpressions: [
                Requirement(key: "version", operator: "In", values: ["v2"]),
                Requirement(key: "canary", operator: "DoesNotExist"),
            ])
        #expect(selector.matches(Self.labels))
        #expect(!selector.matches(Self.labels.merging(["canary": "true"]) { $1 }))
        #expect(!selector.matches(["version": "v2"]))
        let withUnknown = Selector(
            matchLabels: ["app": "catalog"],
            matchExpressions: [
                Requirement(key: "app", operator: "Exists"), Requirement(key: "app", operator: "Matches"),
            ])
        #expect(!withUnknown.matches(Self.labels))
    }

    @Test("an empty selector matches everything, even no labels")
    func emptySelector() {
        #expect(Selector().matches(Self.labels))
        #expect(Selector().matches([:]))
        #expect(Selector(matchLabels: [:], matchExpressions: []).matches([:]))
    }

    @Test("selectorMatches: an empty or absent Service selector selects nothing")
    func serviceSelector() {
        #expect(!selectorMatches(nil, Self.labels))
        #expect(!selectorMatches([:], Self.labels))
        #expect(!selectorMatches([:], [:]))
        #expect(selectorMatches(["app": "catalog"], Self.labels))
        #expect(selectorMatches(["app": "catalog", "tier": "backend"], Self.labels))
        #expect(!selectorMatches(["app": "catalog", "tier": "frontend"], Self.labels))
        #expect(!selectorMatches(["app": "catalog"], [:]))
    }

    @Test("decodes from JSON with `operator`")
    func decoding() throws {
        let selector = try JSONValueDecoder().decode(
            Selector.self,
            from: [
                "matchExpressions": [["key": "version", "operator": "NotIn", "values": ["v1"]]]
            ])
        #expect(
            selector == Selector(matchExpressions: [Requirement(key: "version", operator: "NotIn", values: ["v1"])]))
        #expect(selector.matches(Self.labels))
    }
}

@Suite("IntOrString, ObjectKey, field paths")
struct SmallTypesTests {
    @Test(
        "IntOrString decodes numbers as ints and keeps strings, even numeric ones",
        arguments: [
            (JSONValue.int(8080), IntOrString.int(8080)),
            (.string("http"), .string("http")),
            (.string("8080"), .string("8080")),
            (.double(80), .int(80)),
        ])
    func intOrString(_ value: JSONValue, _ expected: IntOrString) throws {
        let decoded = try JSONValueDecoder().decode(IntOrString.self, from: value)
        #expect(decoded == expected)
        let viaFoundation = try JSONDecoder().decode([IntOrString].self, from: try JSONEncoder().encode([value]))
        #expect(viaFoundation == [expected])
        #expect(try JSONValue.from(encodable: decoded) == (value == .double(80) ? .int(80) : value))
    }

    @Test("IntOrString refuses other kinds")
    func intOrStringInvalid() {
        #expect(throws: DecodingError.self) { try JSONValueDecoder().decode(IntOrString.self, from: true) }
        #expect(throws: DecodingError.self) { try JSONValueDecoder().decode(IntOrString.self, from: 1.5) }
        #expect(throws: DecodingError.self) { try JSONValueDecoder().decode(IntOrString.self, from: [1]) }
        #expect(IntOrString.int(80).description == "80")
        #expect(IntOrString.string("http").description == "http")
    }

    @Test(
        "ObjectKey parses namespace/name",
        arguments: [
            ("shop/catalog", ObjectKey(namespace: "shop", name: "catalog")),
            ("catalog", ObjectKey(namespace: "default", name: "catalog")),
        ])
    func objectKeyParsing(_ text: String, _ expected: ObjectKey) {
        #expect(ObjectKey(parsing: text) == expected)
        #expect(ObjectKey(parsing: text)?.description == (text.contains("/") ? text : "default/\(text)"))
    }

    @Test("ObjectKey refuses malformed keys", arguments: ["", "/", "shop/", "/catalog", "a/b/c", "shop//catalog"])
    func objectKeyInvalid(_ text: String) {
        #expect(ObjectKey(parsing: text) == nil)
    }

    @Test("ObjectKey: default namespace, description, order")
    func objectKey() {
        #expect(
            ObjectKey(parsing: "catalog", defaultNamespace: "shop") == ObjectKey(namespace: "shop", name: "catalog"))
        #expect(ObjectKey(namespace: "", name: "shop").description == "shop")
        let keys = [
            ObjectKey(namespace: "b", name: "a"), ObjectKey(namespace: "a", name: "z"),
            ObjectKey(namespace: "a", name: "b"),
        ]
        #expect(keys.sorted().map(\.description) == ["a/b", "a/z", "b/a"])
    }

    @Test("fieldPath joins keys with dots and indices with brackets")
    func fieldPath() {
        let path: [any CodingKey] = [
            AnyCodingKey("spec"), AnyCodingKey("http"), AnyCodingKey(intValue: 2), AnyCodingKey("route"),
            AnyCodingKey(intValue: 0), AnyCodingKey(intValue: 1),
        ]
        #expect(path.fieldPath == "spec.http[2].route[0][1]")
        #expect([any CodingKey]().fieldPath == "")
        #expect(([AnyCodingKey(intValue: 3)] as [any CodingKey]).fieldPath == "[3]")
        // Foundation's JSONDecoder names array elements "Index N".
        #expect(
            ([AnyCodingKey("items"), AnyCodingKey("Index 4"), AnyCodingKey("name")] as [any CodingKey]).fieldPath
                == "items[4].name")
        // Map keys are kept as they are, dots included.
        #expect(
            ([AnyCodingKey("labels"), AnyCodingKey("app.kubernetes.io/name")] as [any CodingKey]).fieldPath
                == "labels.app.kubernetes.io/name")
    }

    @Test("Foundation's JSONDecoder paths read as field paths too")
    func foundationPath() throws {
        struct Item: Decodable { var port: Int32 }
        struct Wrapper: Decodable { var items: [Item] }
        let data = Data(#"{"items": [{"port": 1}, {"port": "x"}]}"#.utf8)
        #expect {
            try JSONDecoder().decode(Wrapper.self, from: data)
        } throws: { error in
            describe(error)?.path == "items[1].port"
        }
    }
}
