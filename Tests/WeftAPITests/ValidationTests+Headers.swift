import KubeModel
import Testing
import WeftAPI

/// Where a header operation sits: on the route (`spec.http[0].headers`) or on one destination
/// (`spec.http[1].route[0].headers`), on the request or on the response.
struct HeaderSite: Sendable, CustomTestStringConvertible {
    var label: String
    var path: String
    var edit: @Sendable (inout VirtualService, weft.v1alpha1.HeaderOperations) -> Void

    static let all: [HeaderSite] = [
        HeaderSite(label: "route request", path: "spec.http[0].headers.request") {
            $0.spec.http?[0].headers = .init(request: $1)
        },
        HeaderSite(label: "route response", path: "spec.http[0].headers.response") {
            $0.spec.http?[0].headers = .init(response: $1)
        },
        HeaderSite(label: "destination request", path: "spec.http[1].route[0].headers.request") {
            $0.spec.http?[1].route?[0].headers = .init(request: $1)
        },
        HeaderSite(label: "destination response", path: "spec.http[1].route[1].headers.response") {
            $0.spec.http?[1].route?[1].headers = .init(response: $1)
        },
    ]

    var testDescription: String { self.label }
}

enum HeaderOperation: String, Sendable, CaseIterable {
    case set, add, remove

    /// The operations with `name` (and `value` for set and add), and the path of the entry.
    func operations(_ name: String, value: String = "1") -> (weft.v1alpha1.HeaderOperations, String) {
        switch self {
        case .set: (.init(set: [name: value]), "set.\(name)")
        case .add: (.init(add: [name: value]), "add.\(name)")
        case .remove: (.init(remove: [name]), "remove[0]")
        }
    }
}

/// The message for a header the proxy manages (the wording of Validation+Headers.swift).
func managedHeaderMessage(_ name: String) -> String {
    let lowercased = name.lowercased()
    if lowercased.hasPrefix(":") {
        return "\"\(name)\" is a pseudo-header: the proxy writes it (change the path or authority with rewrite)"
    }
    if lowercased == "host" {
        return "\"host\" is managed by the proxy: change the authority with rewrite.authority"
    }
    if lowercased.hasPrefix("x-weft-") {
        return "\"\(name)\" is reserved for the proxy (the x-weft- prefix)"
    }
    return "\"\(name)\" is managed by the proxy (message framing and hop-by-hop headers), routes may not set, add or "
        + "remove it"
}

@Suite("VirtualService header operations and rewrite values")
struct HeaderValidationTests {
    /// Framing, hop-by-hop, the authority, pseudo-headers and the proxy's own prefix, in any case.
    static let managedNames = [
        "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer",
        "upgrade", "host", "Content-Length", "Transfer-Encoding", "HOST", ":authority", ":path", ":status",
        "x-weft-reason", "x-weft-inbound-port",
    ]

    @Test(arguments: Self.managedNames, HeaderOperation.allCases)
    func refusesHeadersTheProxyManages(_ name: String, _ operation: HeaderOperation) {
        for site in HeaderSite.all {
            var resource = Shop.catalogVirtualService()
            let (operations, entry) = operation.operations(name)
            site.edit(&resource, operations)
            #expect(
                resource.validate() == [FieldError("\(site.path).\(entry)", managedHeaderMessage(name))],
                "\(site.label)")
        }
    }

    /// Names that only look like managed ones.
    @Test(arguments: ["content-type", "x-weft", "x-weftx", "hostname", "x-host", "tes", "x-upgrade", "te-x"])
    func acceptsOtherHeaderNames(_ name: String) {
        for operation in HeaderOperation.allCases {
            var resource = Shop.catalogVirtualService()
            HeaderSite.all[0].edit(&resource, operation.operations(name).0)
            #expect(resource.validate() == [], "\(operation)")
        }
    }

    /// A CR, LF or NUL ends a header field on the wire: the rest would become headers (or a response) of its own.
    @Test(arguments: [
        ("a\r\nx-injected: 1", #""a\r\nx-injected: 1""#),
        ("a\nb", #""a\nb""#),
        ("a\rb", #""a\rb""#),
        ("a\u{0}b", #""a\0b""#),
        ("\r\n\r\nHTTP/1.1 200 OK", #""\r\n\r\nHTTP/1.1 200 OK""#),
    ])
    func refusesHeaderValuesWithLineBreaksOrNUL(_ value: String, _ shown: String) {
        for site in HeaderSite.all {
            for operation in [HeaderOperation.set, .add] {
                var resource = Shop.catalogVirtualService()
                let (operations, entry) = operation.operations("x-a", value: value)
                site.edit(&resource, operations)
                #expect(
                    resource.validate() == [
                        FieldError("\(site.path).\(entry)", "header value must not contain CR, LF or NUL, got \(shown)")
                    ],
                    "\(site.label) \(operation)")
            }
        }
    }

    @Test(arguments: ["", "a b", "tab\there", "ünïcödé", "\"quoted\"", "a;b=c, d"])
    func acceptsOtherHeaderValues(_ value: String) {
        var resource = Shop.catalogVirtualService()
        HeaderSite.all[0].edit(&resource, .init(set: ["x-a": value], add: ["x-b": value]))
        #expect(resource.validate() == [])
    }

    /// The managed-name check comes first; a name that is merely malformed keeps its own message.
    @Test func reportsOneProblemPerName() {
        var resource = Shop.catalogVirtualService()
        resource.spec.http?[0].headers = .init(request: .init(set: ["X-A": "1\n", "Upgrade": "h2c"]))
        #expect(
            resource.validate() == [
                FieldError("spec.http[0].headers.request.set.Upgrade", managedHeaderMessage("Upgrade")),
                FieldError("spec.http[0].headers.request.set.X-A", "header name must be lowercase, got \"X-A\""),
                FieldError(
                    "spec.http[0].headers.request.set.X-A", "header value must not contain CR, LF or NUL, got \"1\\n\""),
            ])
    }

    // MARK: - Redirect and rewrite

    enum TargetField: String, Sendable, CaseIterable {
        case redirectURI = "redirect.uri"
        case redirectAuthority = "redirect.authority"
        case rewriteURI = "rewrite.uri"
        case rewriteAuthority = "rewrite.authority"

        func apply(_ value: String, to resource: inout VirtualService) {
            var redirect = weft.v1alpha1.HTTPRedirect()
            var rewrite = weft.v1alpha1.HTTPRewrite()
            switch self {
            case .redirectURI: redirect.uri = value
            case .redirectAuthority: redirect.authority = value
            case .rewriteURI: rewrite.uri = value
            case .rewriteAuthority: rewrite.authority = value
            }
            switch self {
            case .redirectURI, .redirectAuthority:
                resource.spec.http?[0].route = nil
                resource.spec.http?[0].redirect = redirect
            case .rewriteURI, .rewriteAuthority:
                resource.spec.http?[0].rewrite = rewrite
            }
        }
    }

    @Test(
        arguments: TargetField.allCases,
        [
            ("/a\r\nx-injected: 1", #""/a\r\nx-injected: 1""#),
            ("/a\nb", #""/a\nb""#),
            ("/a\u{0}", #""/a\0""#),
            ("/a b", #""/a b""#),
            ("/a\tb", #""/a\tb""#),
            ("/a\u{7F}", #""/a\u{7F}""#),
        ])
    func refusesURIsAndAuthoritiesWithSpacesOrControls(_ field: TargetField, _ example: (String, String)) {
        var resource = Shop.catalogVirtualService()
        field.apply(example.0, to: &resource)
        #expect(
            resource.validate() == [
                FieldError(
                    "spec.http[0].\(field.rawValue)",
                    "must not contain spaces or control characters (CR, LF, NUL, ...), got \(example.1)")
            ])
    }

    @Test(arguments: TargetField.allCases)
    func acceptsPlainURIsAndAuthorities(_ field: TargetField) {
        var resource = Shop.catalogVirtualService()
        field.apply("/v2/caf%C3%A9?q=1&r=ü", to: &resource)
        #expect(resource.validate() == [])
    }
}
