import Foundation
import Testing
import WeftAPI
import WeftTesting
import Yams

/// `crds/*.yaml` and `Sources/WeftAPI` are both hand-written: these tests keep them in step.
///
/// Field paths use `SchemaProbe`'s notation (`spec.http[].match[].headers{}.exact`): the Swift side comes from
/// probing the `Decodable` types, the CRD side from walking `properties`, `items` and `additionalProperties`.
@Suite("CRD schemas")
struct CRDSchemaTests {
    // MARK: - The kinds

    struct Kind: Sendable, CustomTestStringConvertible {
        var kind: String
        var plural: String
        var group: String
        var version: String
        var isNamespaced: Bool
        var shortName: String
        /// The printer column that comes before Accepted, Programmed and Age.
        var firstColumn: PrinterColumn
        var probe: @Sendable () throws -> SchemaProbe.Result

        var fileName: String { "\(self.plural).\(self.group).yaml" }
        var testDescription: String { self.kind }

        static func of<Resource: WeftResource>(
            _ type: Resource.Type,
            shortName: String,
            firstColumn: PrinterColumn
        ) -> Kind {
            Kind(
                kind: Resource.kind,
                plural: Resource.plural,
                group: Resource.group,
                version: weft.v1alpha1.version,
                isNamespaced: Resource.isNamespaced,
                shortName: shortName,
                firstColumn: firstColumn,
                probe: { try SchemaProbe().probe(Resource.self) }
            )
        }
    }

    struct PrinterColumn: Sendable, Hashable, CustomStringConvertible {
        var name: String
        var type: String
        var jsonPath: String

        static func condition(_ type: String) -> PrinterColumn {
            PrinterColumn(name: type, type: "string", jsonPath: ".status.conditions[?(@.type==\"\(type)\")].status")
        }

        var description: String { "\(self.name) (\(self.type)) \(self.jsonPath)" }
    }

    static let kinds: [Kind] = [
        .of(
            weft.v1alpha1.VirtualService.self,
            shortName: "vs",
            firstColumn: PrinterColumn(name: "Hosts", type: "string", jsonPath: ".spec.hosts")
        ),
        .of(
            weft.v1alpha1.DestinationPolicy.self,
            shortName: "dp",
            firstColumn: PrinterColumn(name: "Host", type: "string", jsonPath: ".spec.host")
        ),
        .of(
            weft.v1alpha1.MeshTLSPolicy.self,
            shortName: "mtls",
            firstColumn: PrinterColumn(name: "Mode", type: "string", jsonPath: ".spec.mode")
        ),
        .of(
            weft.v1alpha1.AuthorizationPolicy.self,
            shortName: "authz",
            firstColumn: PrinterColumn(name: "Action", type: "string", jsonPath: ".spec.action")
        ),
    ]

    /// The roots compared: metadata, apiVersion and kind are Kubernetes'.
    static let roots = ["spec", "status"]

    // MARK: - Schema and types

    @Test("field paths are the same in the CRD and the Swift type", arguments: CRDSchemaTests.kinds)
    func fieldPaths(kind: Kind) throws {
        let swift = try Self.swiftSchema(kind)
        let crd = try Self.crdSchema(kind)
        let swiftPaths = Self.roots.reduce(into: Set<String>()) { $0.formUnion(swift.paths(under: $1)) }

        #expect(swiftPaths.contains("spec"), "the probe found no spec")
        let onlyInSwift = swiftPaths.subtracting(crd.paths).sorted()
        let onlyInCRD = crd.paths.subtracting(swiftPaths).sorted()
        #expect(
            onlyInSwift.isEmpty && onlyInCRD.isEmpty,
            """
            \(kind.fileName) and \(kind.kind) disagree.
            Only in the Swift type (add to the CRD): \(Self.list(onlyInSwift))
            Only in the CRD (add to the Swift type, or remove): \(Self.list(onlyInCRD))
            """
        )
    }

    @Test("scalar fields have the Swift type's OpenAPI type and format", arguments: CRDSchemaTests.kinds)
    func scalarTypes(kind: Kind) throws {
        let swift = try Self.swiftSchema(kind)
        let crd = try Self.crdSchema(kind)
        var mismatches: [String] = []
        for root in Self.roots {
            for (path, swiftType) in swift.scalarTypes(under: root).sorted(by: { $0.key < $1.key }) {
                guard let crdType = crd.scalarTypes[path] else { continue }  // a missing path fails `fieldPaths`
                if crdType != swiftType {
                    mismatches.append("\(path): Swift \(swiftType), CRD \(crdType)")
                }
            }
        }
        #expect(mismatches.isEmpty, "\(kind.fileName): \(Self.list(mismatches))")
    }

    @Test("required fields are the Swift type's non-optional properties", arguments: CRDSchemaTests.kinds)
    func requiredFields(kind: Kind) throws {
        let swift = try Self.swiftSchema(kind)
        let crd = try Self.crdSchema(kind)
        let swiftRequired = Self.roots.reduce(into: Set<String>()) { $0.formUnion(swift.requiredPaths(under: $1)) }
        let crdRequired = crd.requiredPaths.filter { path in
            Self.roots.contains { SchemaProbe.path(path, isUnder: $0) }
        }

        let onlyInSwift = swiftRequired.subtracting(crdRequired).sorted()
        let onlyInCRD = crdRequired.subtracting(swiftRequired).sorted()
        #expect(
            onlyInSwift.isEmpty && onlyInCRD.isEmpty,
            """
            \(kind.fileName) and \(kind.kind) disagree on required fields.
            Non-optional in Swift, not required in the CRD: \(Self.list(onlyInSwift))
            Required in the CRD, optional in Swift: \(Self.list(onlyInCRD))
            """
        )
    }

    @Test("every property has a description, a type, and every CEL rule a message", arguments: CRDSchemaTests.kinds)
    func documentation(kind: Kind) throws {
        let crd = try Self.crdSchema(kind)
        #expect(crd.undocumented.isEmpty, "properties without a description: \(Self.list(crd.undocumented))")
        #expect(crd.untyped.isEmpty, "schemas without a type (not structural): \(Self.list(crd.untyped))")
        #expect(crd.rulesWithoutMessage.isEmpty, "CEL rules without a message: \(Self.list(crd.rulesWithoutMessage))")
        #expect(crd.ruleCount > 0, "\(kind.fileName) has no CEL validation")
    }

    // MARK: - Names, subresources and columns

    @Test("names, scope, version and status subresource", arguments: CRDSchemaTests.kinds)
    func names(kind: Kind) throws {
        let document = try Self.load(kind)
        #expect(document["apiVersion"] as? String == "apiextensions.k8s.io/v1")
        #expect(document["kind"] as? String == "CustomResourceDefinition")
        #expect(Self.value(document, "metadata", "name") as? String == "\(kind.plural).\(kind.group)")

        #expect(kind.group == weft.v1alpha1.group)
        #expect(Self.value(document, "spec", "group") as? String == kind.group)
        #expect(Self.value(document, "spec", "scope") as? String == (kind.isNamespaced ? "Namespaced" : "Cluster"))
        #expect(Self.value(document, "spec", "names", "kind") as? String == kind.kind)
        #expect(Self.value(document, "spec", "names", "plural") as? String == kind.plural)
        #expect(Self.value(document, "spec", "names", "singular") as? String == kind.kind.lowercased())
        #expect(Self.value(document, "spec", "names", "listKind") as? String == "\(kind.kind)List")
        #expect(Self.value(document, "spec", "names", "shortNames") as? [String] == [kind.shortName])
        #expect((Self.value(document, "spec", "names", "categories") as? [String])?.contains("weft") == true)

        let versions = try #require(Self.value(document, "spec", "versions") as? [[String: Any]])
        #expect(versions.count == 1)
        let version = try #require(versions.first)
        #expect(version["name"] as? String == kind.version)
        #expect(version["served"] as? Bool == true)
        #expect(version["storage"] as? Bool == true)
        #expect(Self.value(version, "subresources", "status") is [String: Any], "the status subresource is off")
    }

    @Test("printer columns", arguments: CRDSchemaTests.kinds)
    func printerColumns(kind: Kind) throws {
        let version = try Self.version(Self.load(kind))
        let columns = try #require(version["additionalPrinterColumns"] as? [[String: Any]])
        let actual = columns.map {
            PrinterColumn(
                name: $0["name"] as? String ?? "",
                type: $0["type"] as? String ?? "",
                jsonPath: $0["jsonPath"] as? String ?? ""
            )
        }
        let expected = [
            kind.firstColumn,
            .condition("Accepted"),
            .condition("Programmed"),
            PrinterColumn(name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp"),
        ]
        #expect(actual == expected)
    }

    @Test("every file in crds/ is one of the kinds (and the kustomization that lists them)")
    func noStrayFiles() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.crdsDirectory.path)
            .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && $0 != "kustomization.yaml" }
        #expect(Set(files) == Set(Self.kinds.map(\.fileName)))
    }

    // MARK: - The probe itself

    @Test("the probe's notation: members, array elements and map values")
    func probeNotation() throws {
        let paths = try SchemaProbe().probe(weft.v1alpha1.VirtualService.self).paths
        for path in [
            "spec.hosts", "spec.hosts[]", "spec.http[].match[].headers", "spec.http[].match[].headers{}",
            "spec.http[].match[].headers{}.exact", "spec.http[].route[].destination.port.number",
            "status.conditions[].lastTransitionTime", "metadata.labels{}",
        ] {
            #expect(paths.contains(path), "missing \(path)")
        }
    }

    @Test("the probe stops recursive types at its depth limit")
    func probeDepthLimit() throws {
        let result = try SchemaProbe(maxDepth: 6).probe(Tree.self)
        #expect(result.paths.isSuperset(of: ["name", "children[].children[].name", "next.tree.next.tree.name"]))
        #expect(!result.paths.contains("children[].children[].children[].children"))
        #expect(result.requiredPaths.isSuperset(of: ["name", "next.tree", "children[].name"]))
        #expect(!result.requiredPaths.contains("children"))

        #expect(throws: SchemaProbeError.self) {
            try SchemaProbe(maxDepth: 6).probe(Endless.self)
        }
    }

    struct Tree: Decodable {
        var name: String
        var children: [Tree]?
        var next: Box?
    }

    final class Box: Decodable {
        let tree: Tree
    }

    final class Endless: Decodable {
        let next: Endless
    }

    // MARK: - Loading

    /// `Tests/WeftAPITests/CRDSchemaTests.swift` → the package root.
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    static let crdsDirectory = Self.packageRoot.appendingPathComponent("crds", isDirectory: true)

    static func load(_ kind: Kind) throws -> [String: Any] {
        let url = Self.crdsDirectory.appendingPathComponent(kind.fileName)
        let text = try String(contentsOf: url, encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any], "\(kind.fileName) is not a YAML mapping")
    }

    static func version(_ document: [String: Any]) throws -> [String: Any] {
        let versions = try #require(Self.value(document, "spec", "versions") as? [[String: Any]])
        return try #require(versions.first, "no versions")
    }

    static func swiftSchema(_ kind: Kind) throws -> SchemaProbe.Result {
        try kind.probe()
    }

    static func crdSchema(_ kind: Kind) throws -> CRDSchema {
        let version = try Self.version(Self.load(kind))
        let root = try #require(
            Self.value(version, "schema", "openAPIV3Schema") as? [String: Any],
            "\(kind.fileName) has no openAPIV3Schema"
        )
        var schema = CRDSchema()
        for name in root["required"] as? [String] ?? [] where Self.roots.contains(name) {
            schema.requiredPaths.insert(name)
        }
        for name in Self.roots {
            let node = try #require(Self.value(root, "properties", name), "\(kind.fileName) has no \(name) schema")
            schema.walk(node, path: name, isProperty: true)
        }
        return schema
    }

    static func value(_ object: [String: Any], _ keys: String...) -> Any? {
        var current: Any? = object
        for key in keys {
            current = (current as? [String: Any])?[key]
        }
        return current
    }

    static func list(_ items: [String]) -> String {
        items.isEmpty ? "none" : "\n  " + items.joined(separator: "\n  ")
    }
}

// MARK: - The CRD side

/// What a walk of a CRD's OpenAPI schema found, in `SchemaProbe`'s path notation.
struct CRDSchema {
    var paths: Set<String> = []
    /// `string`, `boolean`, `number`, or `integer/<format>`.
    var scalarTypes: [String: String] = [:]
    var requiredPaths: Set<String> = []
    var undocumented: [String] = []
    var untyped: [String] = []
    var rulesWithoutMessage: [String] = []
    var ruleCount = 0

    mutating func walk(_ node: Any, path: String, isProperty: Bool) {
        self.paths.insert(path)
        guard let schema = node as? [String: Any] else {
            self.untyped.append("\(path) (not a mapping)")
            return
        }
        if isProperty {
            let description = (schema["description"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines)
            if description?.isEmpty ?? true {
                self.undocumented.append(path)
            }
        }
        switch schema["type"] as? String {
        case "string", "boolean", "number":
            self.scalarTypes[path] = schema["type"] as? String
        case "integer":
            self.scalarTypes[path] = "integer/\(schema["format"] as? String ?? "(no format)")"
        case "object", "array":
            break
        default:
            self.untyped.append(path)
        }
        for rule in schema["x-kubernetes-validations"] as? [[String: Any]] ?? [] {
            self.ruleCount += 1
            let message = (rule["message"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if message.isEmpty {
                self.rulesWithoutMessage.append("\(path): \(rule["rule"] as? String ?? "?")")
            }
        }
        for name in schema["required"] as? [String] ?? [] {
            self.requiredPaths.insert(SchemaProbe.member(name, of: path))
        }
        if let properties = schema["properties"] as? [String: Any] {
            for (name, property) in properties.sorted(by: { $0.key < $1.key }) {
                self.walk(property, path: SchemaProbe.member(name, of: path), isProperty: true)
            }
        }
        if let items = schema["items"] {
            self.walk(items, path: path + "[]", isProperty: false)
        }
        if let values = schema["additionalProperties"], !(values is Bool) {
            self.walk(values, path: path + "{}", isProperty: false)
        }
    }
}
