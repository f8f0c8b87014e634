import Foundation
import KubeModel
import Testing
import WeftAPI
import WeftCompiler
import WeftManifests

@Suite("ManifestLoader: located problems")
struct LocatedProblemTests {
    @Test("invalid YAML names file, line and column; the other documents still load")
    func invalidYAML() {
        let text = """
            apiVersion: v1
            kind: Namespace
            metadata:
              name: shop
            ---
            apiVersion: v1
              kind: ConfigMap
            metadata:
              name: broken
            ---
            apiVersion: v1
            kind: Service
            metadata:
              name: web
              namespace: shop
            spec:
              selector: {app: web}
              ports:
              - port: 80
            """
        let loaded = load(text, file: "shop.yaml")
        #expect(lines(loaded) == ["shop.yaml:7:7: invalid YAML: mapping values are not allowed in this context"])
        #expect(loaded.problems.first?.resource == nil)
        #expect(loaded.snapshot.namespaces.map(\.metadata.name) == ["shop"])
        #expect(loaded.snapshot.services.map(\.key.description) == ["shop/web"])
        #expect(loaded.files == ["shop.yaml"])
    }

    @Test("bad indentation deep in a document is located in the file, not the document")
    func badIndentation() {
        let text = """
            # A comment before the first document.
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: a
             namespace: shop
            data: {}
            """
        let loaded = load(text)
        #expect(loaded.problems.count == 1)
        #expect(loaded.problems.first?.line == 7)
        #expect(loaded.problems.first?.column == 2)
        #expect(loaded.problems.first?.message.hasPrefix("invalid YAML: ") == true)
    }

    @Test("an unclosed flow mapping is reported and documents after it load")
    func unclosedFlow() {
        let text = """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: a, namespace: shop
            data: {}
            ---
            apiVersion: v1
            kind: Namespace
            metadata: {name: shop}
            """
        let loaded = load(text)
        #expect(loaded.problems.count == 1)
        #expect(loaded.problems.first?.message.hasPrefix("invalid YAML: ") == true)
        #expect((loaded.problems.first?.line ?? 0) >= 3 && (loaded.problems.first?.line ?? 0) <= 4)
        #expect(loaded.snapshot.namespaces.count == 1)
    }

    @Test("a wrong type names the resource, the field path and the field's line")
    func wrongType() {
        let text = """
            apiVersion: v1
            kind: Service
            metadata:
              name: web
              namespace: shop
            spec:
              selector:
                app: web
              ports:
              - name: http
                port: eighty
            """
        let loaded = load(text)
        #expect(
            lines(loaded) == [
                "test.yaml:11:5: shop/Service/web: spec.ports[0].port: expected an integer, found a string"
            ])
        let problem = loaded.problems.first
        #expect(problem?.resource == "shop/Service/web")
        #expect(problem?.field == "spec.ports[0].port")
        #expect(problem?.line == 11)
        #expect(loaded.snapshot.services.isEmpty)
    }

    @Test(
        "wrong types in later documents keep their own line numbers",
        arguments: [
            (
                "containerPort: \"8080\"", "spec.containers[1].ports[0].containerPort",
                "expected an integer, found a string"
            ),
            (
                "containerPort: 99999999999", "spec.containers[1].ports[0].containerPort",
                "99999999999 is out of range -2147483648...2147483647"
            ),
            ("containerPort: [80]", "spec.containers[1].ports[0].containerPort", "expected an integer, found an array"),
            ("hostPort: yes", "spec.containers[1].ports[0].containerPort", #"required field is missing"#),
        ])
    func wrongTypeInPod(_ portLine: String, _ field: String, _ message: String) {
        let text = """
            apiVersion: v1
            kind: Namespace
            metadata: {name: shop}
            ---
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: a
                image: a
              - name: b
                image: b
                ports:
                - \(portLine)
            """
        let loaded = load(text)
        #expect(loaded.problems.count == 1)
        let problem = loaded.problems.first
        #expect(problem?.resource == "default/Pod/web")
        #expect(problem?.field == field)
        #expect(problem?.message == message)
        #expect(problem?.line == 16)
        #expect(loaded.snapshot.pods.isEmpty)
        #expect(loaded.snapshot.namespaces.count == 1)
    }

    @Test("a modelled field that is null is accepted as absent")
    func nullField() {
        let loaded = load(
            """
            apiVersion: v1
            kind: Pod
            metadata: {name: p, namespace: shop, creationTimestamp: null}
            spec:
              containers: [{name: a, image: a, resources: {}}]
            status: {}
            """)
        #expect(loaded.problems.isEmpty)
        #expect(loaded.snapshot.pods.first?.metadata.creationTimestamp == nil)
    }

    @Test("a resource without a name is an error")
    func missingName() {
        let loaded = load("apiVersion: v1\nkind: Service\nmetadata:\n  namespace: shop\nspec: {}\n")
        #expect(lines(loaded) == ["test.yaml:3:1: shop/Service/<unnamed>: metadata.name: must be set"])
    }
}

@Suite("ManifestLoader: kinds")
struct KindTests {
    @Test("an unknown Weft kind is an error")
    func unknownWeftKind() {
        let loaded = load(
            """
            # header
            apiVersion: weft.dev/v1alpha1
            kind: Foo
            metadata: {name: x, namespace: shop}
            """)
        #expect(
            lines(loaded) == [
                #"test.yaml:2: unknown kind "Foo" in weft.dev/v1alpha1: Weft serves VirtualService, DestinationPolicy, "#
                    + "MeshTLSPolicy and AuthorizationPolicy in weft.dev/v1alpha1"
            ])
    }

    @Test("a Weft kind in another version is an error")
    func otherWeftVersion() {
        let loaded = load(
            "apiVersion: weft.dev/v1beta1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [a]}\n")
        #expect(loaded.problems.count == 1)
        #expect(loaded.problems.first?.message.hasPrefix(#"unknown kind "VirtualService" in weft.dev/v1beta1"#) == true)
        #expect(loaded.snapshot.virtualServices.isEmpty)
    }

    @Test(
        "Kubernetes kinds the mesh does not read are ignored silently",
        arguments: [
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: frontend, namespace: shop}\n",
            "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: rs}\nspec: {anything: [1, 2]}\n",
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\n",
            "apiVersion: v1\nkind: PodList\nmetadata: {}\n",
        ])
    func ignoredKinds(_ text: String) {
        let loaded = load(text)
        #expect(loaded.problems.isEmpty)
        #expect(loaded.snapshot == WeftSnapshot())
        #expect(loaded.locations.isEmpty)
    }

    @Test(
        "apiVersion and kind must be set",
        arguments: [
            "kind: Service\nmetadata: {name: a}\n",
            "apiVersion: v1\nmetadata: {name: a}\n",
            "apiVersion: v1\nkind: 7\nmetadata: {name: a}\n",
            "metadata: {name: a}\n",
        ])
    func missingApiVersionOrKind(_ text: String) {
        #expect(lines(load(text)) == ["test.yaml:1: apiVersion and kind must be set"])
    }

    @Test(
        "a document that is not an object is an error",
        arguments: [
            ("- a\n- b\n", "a manifest must be an object, found an array"),
            ("just text\n", "a manifest must be an object, found a string"),
            ("42\n", "a manifest must be an object, found a number"),
        ])
    func notAnObject(_ text: String, _ message: String) {
        #expect(lines(load(text)) == ["test.yaml:1: \(message)"])
    }

    @Test("an unknown field in a VirtualService is an error naming its path and line")
    func unknownVirtualServiceField() {
        let text = """
            apiVersion: weft.dev/v1alpha1
            kind: VirtualService
            metadata:
              name: catalog
              namespace: shop
              annotations: {anything: goes}
              somethingNew: metadata is not checked
            spec:
              hosts: [catalog]
              http:
              - name: default
                rout:
                - destination:
                    host: catalog
            status:
              whatever: status is not checked
            """
        let loaded = load(text)
        #expect(
            lines(loaded) == [#"test.yaml:12:5: shop/VirtualService/catalog: spec.http[0].rout: unknown field "rout""#])
    }

    @Test(
        "unknown fields are found at any depth of every Weft kind",
        arguments: [
            (
                "VirtualService", "hosts: [catalog]\n  http:\n  - route:\n    - destination: {host: catalog, hots: x}",
                "spec.http[0].route[0].destination.hots"
            ),
            (
                "DestinationPolicy", "host: catalog\n  trafficPolicy: {loadBalancer: {simpel: ROUND_ROBIN}}",
                "spec.trafficPolicy.loadBalancer.simpel"
            ),
            ("MeshTLSPolicy", "mode: STRICT\n  mtls: true", "spec.mtls"),
            (
                "AuthorizationPolicy", "action: DENY\n  rules:\n  - to:\n    - paths: [/debug/*]\n      hosts: [x]",
                "spec.rules[0].to[0].hosts"
            ),
        ])
    func unknownFields(_ kind: String, _ spec: String, _ path: String) {
        let text =
            "apiVersion: weft.dev/v1alpha1\nkind: \(kind)\nmetadata: {name: x, namespace: shop}\nspec:\n  \(spec)\n"
        let loaded = load(text)
        #expect(loaded.problems.map(\.field) == [path])
        #expect(loaded.problems.first?.resource == "shop/\(kind)/x")
        let leaf = path.split(separator: ".").last.map(String.init) ?? path
        #expect(loaded.problems.first?.message == "unknown field \"\(leaf)\"")
    }

    @Test("Kubernetes objects are not strict: unknown fields are kept, not reported")
    func kubernetesObjectsAreLenient() {
        let loaded = load(
            """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop}
            spec:
              ports: [{port: 80, newField: 1}]
              futureField: {a: b}
            """)
        #expect(loaded.problems.isEmpty)
        #expect(loaded.snapshot.services.first?.spec?.unknownFields == ["futureField": ["a": "b"]])
    }
}

@Suite("ManifestLoader: lists, duplicates, namespaces, settings")
struct StructureTests {
    @Test("a v1 List loads each item; an item's problem has the item's lines")
    func list() {
        let text = """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Service
              metadata: {name: a, namespace: shop}
              spec: {selector: {app: a}, ports: [{port: 80}]}
            - apiVersion: v1
              kind: Namespace
              metadata: {name: shop}
            - apiVersion: v1
              kind: Pod
              metadata: {name: p}
              spec:
                containers:
                - name: app
                  ports:
                  - containerPort: x
            - apiVersion: weft.dev/v1alpha1
              kind: MeshTLSPolicy
              metadata: {name: default, namespace: shop}
              spec: {mode: STRICT}
            """
        let loaded = load(text)
        #expect(
            lines(loaded) == [
                "test.yaml:18:9: default/Pod/p: spec.containers[0].ports[0].containerPort: expected an integer, found a string"
            ])
        #expect(loaded.snapshot.services.map(\.key.description) == ["shop/a"])
        #expect(loaded.snapshot.namespaces.map(\.key.description) == ["shop"])
        #expect(loaded.snapshot.meshTLSPolicies.map(\.metadata.name) == ["default"])
        #expect(loaded.locations["shop/Service/a"] == SourceLocation(file: "test.yaml", line: 4))
        #expect(loaded.locations["/Namespace/shop"] == SourceLocation(file: "test.yaml", line: 8))
        #expect(loaded.locations["shop/MeshTLSPolicy/default"] == SourceLocation(file: "test.yaml", line: 19))
    }

    @Test("a duplicate definition is reported with the first location; the first one wins")
    func duplicate() {
        let text = """
            # Two definitions of shop/Service/a.
            apiVersion: v1
            kind: Service
            metadata: {name: a, namespace: shop}
            spec: {ports: [{port: 80}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: a, namespace: shop}
            spec: {ports: [{port: 81}]}
            """
        let loaded = load(text)
        #expect(lines(loaded) == ["test.yaml:7:1: shop/Service/a: defined again; first defined at test.yaml:2"])
        #expect(loaded.snapshot.services.count == 1)
        #expect(loaded.snapshot.services.first?.spec?.ports?.first?.port == 80)
        #expect(loaded.locations["shop/Service/a"] == SourceLocation(file: "test.yaml", line: 2))
    }

    @Test("an object without namespace and one in `default` are the same object")
    func duplicateThroughDefaultNamespace() {
        let loaded = load(
            """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: a}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: a, namespace: default}
            """)
        #expect(lines(loaded) == ["test.yaml:5:1: default/ConfigMap/a: defined again; first defined at test.yaml:1"])
    }

    @Test("the same name in another kind or namespace is not a duplicate")
    func notDuplicates() {
        let loaded = load(
            """
            apiVersion: v1
            kind: Service
            metadata: {name: a, namespace: shop}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: a, namespace: other}
            ---
            apiVersion: weft.dev/v1alpha1
            kind: VirtualService
            metadata: {name: a, namespace: shop}
            spec: {hosts: [a]}
            """)
        #expect(loaded.problems.isEmpty)
        #expect(loaded.snapshot.services.count == 2)
        #expect(loaded.snapshot.virtualServices.count == 1)
    }

    @Test("a namespaced object without namespace gets the default namespace; a Namespace gets none")
    func defaultNamespace() {
        let text = """
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec: {containers: [{name: a}]}
            ---
            apiVersion: v1
            kind: Namespace
            metadata: {name: shop}
            ---
            apiVersion: weft.dev/v1alpha1
            kind: MeshTLSPolicy
            metadata: {name: m}
            spec: {mode: STRICT}
            """
        let loaded = load(text)
        #expect(loaded.problems.isEmpty)
        #expect(loaded.snapshot.pods.first?.metadata.namespace == "default")
        #expect(loaded.snapshot.meshTLSPolicies.first?.metadata.namespace == "default")
        #expect(loaded.snapshot.namespaces.first?.metadata.namespace == nil)
        #expect(Set(loaded.locations.keys) == ["default/Pod/p", "/Namespace/shop", "default/MeshTLSPolicy/m"])

        let custom = ManifestLoader(defaultNamespace: "dev").load(text: text, file: "x.yaml")
        #expect(custom.snapshot.pods.first?.metadata.namespace == "dev")
        #expect(custom.snapshot.pods.first?.key == ObjectKey(namespace: "dev", name: "p"))
    }

    @Test("the weft-config ConfigMap sets the mesh settings")
    func meshSettings() {
        let loaded = load(
            """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: weft-config, namespace: weft-system}
            data:
              trustDomain: example.org
              clusterDomain: corp.local
              defaultTLSMode: STRICT
            """)
        #expect(loaded.problems.isEmpty)
        #expect(loaded.snapshot.settings.trustDomain == "example.org")
        #expect(loaded.snapshot.settings.clusterDomain == "corp.local")
        #expect(loaded.snapshot.settings.defaultTLSMode == .strict)
        #expect(loaded.snapshot.settings.rootNamespace == "weft-system")
    }

    @Test("another ConfigMap does not change the settings")
    func otherConfigMap() {
        let loaded = load(
            """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: app-config, namespace: shop}
            data: {trustDomain: example.org}
            """)
        #expect(loaded.problems.isEmpty)
        #expect(loaded.snapshot.settings == MeshSettings())
    }

    @Test("an invalid defaultTLSMode is reported and keeps the default")
    func invalidTLSMode() {
        let loaded = load(
            """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: weft-config, namespace: weft-system}
            data:
              trustDomain: example.org
              defaultTLSMode: strict
            """, file: "config.yaml")
        #expect(
            lines(loaded) == [
                #"config.yaml:1: weft-system/ConfigMap/weft-config: data.defaultTLSMode: must be one of STRICT, PERMISSIVE, DISABLE, got "strict""#
            ])
        #expect(loaded.hasErrors)
        #expect(loaded.snapshot.settings.defaultTLSMode == .permissive)
        #expect(loaded.snapshot.settings.trustDomain == "example.org")
    }

    @Test("CRLF line endings and `...` document ends are understood")
    func lineEndings() {
        let text =
            "apiVersion: v1\r\nkind: Namespace\r\nmetadata: {name: a}\r\n---\r\napiVersion: v1\r\nkind: Namespace\r\n"
            + "metadata: {name: b}\r\n...\r\napiVersion: v1\r\nkind: Namespace\r\nmetadata:\r\n  name: c\r\n  labels: x\r\n"
        let loaded = load(text)
        #expect(loaded.snapshot.namespaces.map(\.metadata.name) == ["a", "b"])
        #expect(lines(loaded) == ["test.yaml:13:3: /Namespace/c: metadata.labels: expected an object, found a string"])
    }

    @Test("a CRLF file that starts with a comment is read, not taken for blank")
    func crlfWithHeader() {
        let loaded = load("# header\r\napiVersion: v1\r\nkind: Namespace\r\nmetadata: {name: a}\r\n")
        #expect(loaded.problems.isEmpty)
        #expect(loaded.snapshot.namespaces.map(\.metadata.name) == ["a"])
        #expect(loaded.locations["/Namespace/a"] == SourceLocation(file: "test.yaml", line: 2))
    }

    @Test("in a CRLF file, an apostrophe in a comment does not hide deep nesting on later lines")
    func crlfNesting() {
        let text =
            "# don't\r\napiVersion: v1\r\nkind: ConfigMap\r\nmetadata: {name: deep}\r\nx: "
            + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "\r\n"
        #expect(lines(load(text)) == ["test.yaml:5: nesting deeper than 64 levels"])
    }

    @Test("JSON manifests load, with lines")
    func json() {
        let text = """
            {
              "apiVersion": "v1",
              "kind": "Service",
              "metadata": {"name": "web", "namespace": "shop"},
              "spec": {"ports": [{"port": "80"}]}
            }
            """
        #expect(
            lines(load(text, file: "svc.json")) == [
                #"svc.json:5:23: shop/Service/web: spec.ports[0].port: expected an integer, found a string"#
            ])
    }
}

@Suite("ManifestLoader: hostile and degenerate input")
struct LimitTests {
    @Test("a 50 MB document is refused with a clear error")
    func hugeText() {
        let header = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big, namespace: shop}\ndata:\n  blob: "
        let text = header + String(repeating: "a", count: 50_000_000 - header.utf8.count) + "\n"
        var loaded = LoadedManifests()
        loaded = load(text)
        #expect(lines(loaded) == ["test.yaml: input is 47 MiB; more than 16 MiB is not read"])
        #expect(loaded.snapshot.configMapsAreEmpty)
    }

    @Test("a document over 3 MiB is refused; the documents around it load")
    func hugeDocument() {
        let big =
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big, namespace: shop}\ndata:\n  blob: "
            + String(repeating: "b", count: 4 << 20) + "\n"
        let text =
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n" + big
            + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n"
        var loaded = LoadedManifests()
        loaded = load(text)
        #expect(loaded.problems.count == 1)
        #expect(loaded.problems.first?.line == 4)
        #expect(
            loaded.problems.first?.message
                == "document is 4096 KiB; at most 3 MiB is accepted per document, as Kubernetes does")
        #expect(loaded.snapshot.namespaces.map(\.metadata.name) == ["a", "b"])
    }

    @Test("a file over 16 MiB on disk is refused before it is read")
    func hugeFile() throws {
        try withTemporaryFolder { folder in
            let file = folder.appendingPathComponent("big.yaml")
            try Data(repeating: UInt8(ascii: "#"), count: (16 << 20) + 1).write(to: file)
            try Data("apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n".utf8)
                .write(to: folder.appendingPathComponent("small.yaml"))
            let loaded = ManifestLoader().load(path: folder.path)
            #expect(lines(loaded) == ["\(file.path): file is 16 MiB; files over 16 MiB are not read"])
            #expect(loaded.snapshot.namespaces.count == 1)
        }
    }

    @Test("10,000 nested flow collections give the nesting error", arguments: ["[", "{a: "])
    func deepFlow(_ open: String) {
        let close = open == "[" ? "]" : "}"
        let text =
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata:\n  x: "
            + String(repeating: open, count: 10_000) + "1" + String(repeating: close, count: 10_000) + "\n"
        var loaded = LoadedManifests()
        loaded = load(text)
        #expect(lines(loaded) == ["test.yaml:5: nesting deeper than 64 levels"])
    }

    @Test("10,000 nested block sequences give the nesting error")
    func deepBlock() {
        let text = "# a list of lists\n---\n" + String(repeating: "- ", count: 10_000) + "x\n"
        let loaded = load(text)
        #expect(lines(loaded) == ["test.yaml:3: nesting deeper than 64 levels"])
        #expect(loaded.files == ["test.yaml"])
    }

    @Test("2,000 lines of ever deeper block mappings give the nesting error")
    func deepIndentation() {
        var text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata:\n"
        for level in 0..<2_000 { text += String(repeating: " ", count: level + 1) + "k\(level):\n" }
        let loaded = load(text)
        #expect(loaded.problems.count == 1)
        #expect(loaded.problems.first?.message == "nesting deeper than 64 levels")
    }

    @Test("nesting just under the limit is fine; one-column indentation is caught after parsing")
    func nestingBoundary() {
        let ok =
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\nextra:\n  x: "
            + String(repeating: "[", count: 60) + String(repeating: "]", count: 60) + "\n"
        #expect(load(ok).problems.isEmpty)

        var narrow = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: narrow}\nx:\n"
        for level in 0..<100 { narrow += String(repeating: " ", count: level + 1) + "k\(level):\n" }
        let loaded = load(narrow)
        #expect(loaded.problems.count == 1)
        #expect(loaded.problems.first?.message == "nesting deeper than 64 levels")
        // The 65th level is the value of k63, which starts on k64's line.
        #expect(loaded.problems.first?.line == 69)
    }

    @Test("an alias bomb gives the expansion error, quickly")
    func aliasBomb() {
        let text = """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: lol, namespace: shop}
            data:
              a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
              b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
              c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
              d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
              e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
              f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
              g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
              h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
              i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
            """
        var loaded = LoadedManifests()
        loaded = load(text)
        #expect(loaded.problems.count == 1)
        #expect(loaded.problems.first?.message == "document expands to more than 1000000 values (an alias bomb?)")
        #expect(loaded.problems.first?.line != nil)
        #expect(loaded.snapshot.configMapsAreEmpty)
    }

    @Test("a few aliases are fine")
    func smallAliases() {
        let loaded = load(
            """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop, labels: &labels {app: web}}
            spec:
              selector: *labels
              ports: [{port: 80}]
            """)
        #expect(loaded.problems.isEmpty)
        #expect(loaded.snapshot.services.first?.spec?.selector == ["app": "web"])
    }

    @Test("a file that is not UTF-8 is reported")
    func notUTF8() throws {
        try withTemporaryFolder { folder in
            let file = folder.appendingPathComponent("latin1.yaml")
            try Data([0x6B, 0x69, 0x6E, 0x64, 0x3A, 0x20, 0x63, 0x61, 0x66, 0xE9, 0x0A, 0xFF, 0xFE]).write(to: file)
            let loaded = ManifestLoader().load(path: file.path)
            #expect(lines(loaded) == ["\(file.path): the file is not UTF-8 text"])
        }
    }

    @Test(
        "empty and comment-only input gives no problem",
        arguments: [
            "", "\n\n", "# just a comment\n", "---\n", "---\n# nothing\n---\n", "  \n\t\n# a\n   # b\n", "...\n",
        ])
    func emptyInput(_ text: String) {
        let loaded = load(text)
        #expect(loaded.problems.isEmpty)
        #expect(loaded.snapshot == WeftSnapshot())
        #expect(loaded.files == ["test.yaml"])
    }

    @Test("empty and comment-only files give no problem")
    func emptyFiles() throws {
        try withTemporaryFolder { folder in
            try Data().write(to: folder.appendingPathComponent("empty.yaml"))
            try Data("# only a comment\n".utf8).write(to: folder.appendingPathComponent("comments.yml"))
            let loaded = ManifestLoader().load(path: folder.path)
            #expect(loaded.problems.isEmpty)
            #expect(loaded.files.map { URL(fileURLWithPath: $0).lastPathComponent } == ["comments.yml", "empty.yaml"])
        }
    }

    @Test("duplicate keys are reported")
    func duplicateKeys() {
        let loaded = load("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n")
        #expect(loaded.problems.count == 1)
        // Yams reports the first occurrence of the key.
        #expect(loaded.problems.first?.line == 4)
        #expect(loaded.problems.first?.column == 3)
        #expect(loaded.problems.first?.message.contains("duplicate") == true)
        #expect(loaded.problems.first?.message.contains("name") == true)
        #expect(loaded.snapshot.namespaces.isEmpty)
    }
}

@Suite("ManifestLoader: files and folders")
struct FolderTests {
    @Test("the examples load without problems, with the expected counts")
    func examples() {
        let loaded = ManifestLoader().load(path: examplesFolder)
        #expect(loaded.problems.isEmpty, "\(lines(loaded))")
        let snapshot = loaded.snapshot
        #expect(snapshot.pods.count == 6)
        #expect(snapshot.services.count == 3)
        #expect(snapshot.endpointSlices.count == 3)
        #expect(snapshot.virtualServices.count == 2)
        #expect(snapshot.destinationPolicies.count == 2)
        #expect(snapshot.meshTLSPolicies.count == 2)
        #expect(snapshot.authorizationPolicies.count == 2)
        #expect(snapshot.namespaces.count == 2)
        #expect(snapshot.deployments.count == 4)
        #expect(snapshot.settings == MeshSettings())
        #expect(
            loaded.files.map { URL(fileURLWithPath: $0).lastPathComponent } == [
                "00-namespace.yaml", "10-frontend.yaml", "20-catalog.yaml", "30-payments.yaml", "40-routing.yaml",
                "50-security.yaml",
            ])
        #expect(loaded.locations.count == 6 + 3 + 3 + 2 + 2 + 2 + 2 + 2 + 4)
        // Locations are the first line of each object, after any comment header or `---`.
        #expect(
            loaded.locations["shop/VirtualService/catalog"]
                == SourceLocation(file: examplesFolder + "/40-routing.yaml", line: 11))
        #expect(
            loaded.locations["shop/DestinationPolicy/catalog"]
                == SourceLocation(file: examplesFolder + "/40-routing.yaml", line: 61))
        #expect(
            loaded.locations["shop/Pod/frontend-6d8f7b9c4-x2k7p"]
                == SourceLocation(file: examplesFolder + "/10-frontend.yaml", line: 103))
        #expect(
            loaded.snapshot.pods.first { $0.metadata.name == "frontend-6d8f7b9c4-x2k7p" }?.status?.podIP
                == "10.244.1.12")
    }

    @Test("a duplicate across files names the first file")
    func duplicateAcrossFiles() throws {
        try withTemporaryFolder { folder in
            let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
            try Data(namespace.utf8).write(to: folder.appendingPathComponent("a.yaml"))
            try Data(("# again\n" + namespace).utf8).write(to: folder.appendingPathComponent("b.yaml"))
            let loaded = ManifestLoader().load(path: folder.path)
            let a = folder.appendingPathComponent("a.yaml").path
            let b = folder.appendingPathComponent("b.yaml").path
            #expect(lines(loaded) == ["\(b):2:1: /Namespace/shop: defined again; first defined at \(a):1"])
        }
    }

    @Test("folders: .yaml, .yml and .json below it are read in order; hidden files and others are not")
    func folderWalk() throws {
        try withTemporaryFolder { folder in
            let fileManager = FileManager.default
            try fileManager.createDirectory(at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
            try fileManager.createDirectory(
                at: folder.appendingPathComponent(".git"), withIntermediateDirectories: true)
            func write(_ name: String, _ namespace: String) throws {
                try Data("apiVersion: v1\nkind: Namespace\nmetadata: {name: \(namespace)}\n".utf8)
                    .write(to: folder.appendingPathComponent(name))
            }
            try write("b.yaml", "b")
            try write("a.yml", "a")
            try write("sub/c.yaml", "c")
            try write(".hidden.yaml", "hidden")
            try write(".git/d.yaml", "git")
            try write("notes.txt", "txt")
            try Data(#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "j"}}"#.utf8)
                .write(to: folder.appendingPathComponent("j.json"))
            let loaded = ManifestLoader().load(path: folder.path)
            #expect(loaded.problems.isEmpty)
            #expect(
                loaded.files.map { String($0.dropFirst(folder.path.count + 1)) } == [
                    "a.yml", "b.yaml", "j.json", "sub/c.yaml",
                ])
            #expect(loaded.snapshot.namespaces.compactMap(\.metadata.name) == ["a", "b", "j", "c"])
        }
    }

    @Test("a missing path is an error; a folder without manifests is a warning")
    func missingAndEmpty() throws {
        let missing = ManifestLoader().load(path: "/nonexistent/weft/manifests")
        #expect(lines(missing) == ["/nonexistent/weft/manifests: no such file or folder"])
        #expect(missing.hasErrors)
        try withTemporaryFolder { folder in
            let loaded = ManifestLoader().load(path: folder.path)
            #expect(loaded.problems.map(\.severity) == [.warning])
            #expect(loaded.problems.first?.message == "no .yaml, .yml or .json files")
            #expect(!loaded.hasErrors)
        }
    }
}

extension WeftSnapshot {
    /// Nothing but default settings was loaded.
    var configMapsAreEmpty: Bool { self.settings == MeshSettings() && self == WeftSnapshot() }
}
