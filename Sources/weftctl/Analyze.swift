import ArgumentParser
import Foundation
import KubeClient
import KubeModel
import WeftAPI
import WeftCompiler
import WeftManifests

/// `weftctl analyze -f PATH` finds mistakes in manifests, offline; `weftctl analyze` in the live cluster.
struct Analyze: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find mistakes in Weft resources and the cluster objects they reference, in files or the cluster.",
        discussion: """
            With -f: reads a file or a folder of manifests (YAML or JSON), offline. Without: reads the cluster \
            (--kubeconfig, --context): Namespaces, Pods, Services, EndpointSlices, Deployments, the four Weft \
            kinds and weft-config. Validates every Weft resource, compiles the mesh as the controller would, and \
            prints each problem as `namespace/kind/name: field.path: reason`, then the conditions each resource \
            would get. Against a cluster it also warns where the status the controller wrote is behind the \
            resource (observedGeneration) or says otherwise than this analysis. Exits 1 when anything is invalid.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table
        case json
    }

    @Option(name: .shortAndLong, help: "A manifest file or a folder of them; without it, the cluster is read.")
    var filename: String?

    @Option(name: .shortAndLong, help: "Output format: table or json.")
    var output: Format = .table

    @Option(name: .shortAndLong, help: "Report only the resources of this namespace (the whole mesh is compiled).")
    var namespace: String?

    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        var report: AnalysisReport
        if let filename = self.filename {
            report = AnalysisReport(path: filename)
        } else {
            do {
                report = try await self.cluster.withClient { client in
                    do {
                        return AnalysisReport(live: try await LiveCluster.read(client))
                    } catch let error as KubeClientError {
                        throw ClusterReadError(message: "reading the cluster failed: \(error)")
                    }
                }
            } catch let error as ValidationError {
                // No cluster configuration: say how to analyze files instead.
                throw ValidationError("\(error.message); or analyze files offline with -f FILE|FOLDER")
            } catch let error as ClusterReadError {
                throw ValidationError(error.message)
            }
        }
        if let namespace = self.namespace { report.keep(namespace: namespace) }
        switch self.output {
        case .json: print(try report.json())
        case .table: print(report.text(), terminator: "")
        }
        if report.hasErrors { throw ExitCode(1) }
    }
}

/// The result of analysing a path: problems (reading and compiling) and conditions per resource.
struct AnalysisReport {
    struct Problem: Codable {
        var severity: String
        var resource: String?
        var field: String?
        var message: String
        var location: String?
    }

    struct Resource: Codable {
        var resource: String
        var location: String?
        var conditions: [meta.v1.Condition]
    }

    var problems: [Problem] = []
    var resources: [Resource] = []

    /// Only the problems and resources of `namespace` (problems of no resource, such as unreadable files, stay).
    mutating func keep(namespace: String) {
        func inside(_ resource: String?) -> Bool { resource.map { $0.hasPrefix(namespace + "/") } ?? true }
        self.problems = self.problems.filter { inside($0.resource) }
        self.resources = self.resources.filter { inside($0.resource) }
    }

    /// The live cluster: compiled with the generations the API server gave, and each resource's compiled
    /// conditions compared with the status the controller wrote.
    init(live: LiveCluster) {
        let result = WeftCompiler().compile(live.snapshot)
        for problem in live.settingsProblems {
            self.problems.append(
                Problem(
                    severity: "warning", resource: nil, field: nil, message: problem,
                    location: "ConfigMap \(weft.v1alpha1.rootNamespace)/weft-config"))
        }
        for diagnostic in result.diagnostics {
            self.problems.append(
                Problem(
                    severity: diagnostic.severity.rawValue, resource: diagnostic.resource.description,
                    field: diagnostic.field.isEmpty ? nil : diagnostic.field, message: diagnostic.message,
                    location: nil))
        }
        for (ref, status) in result.statuses.sorted(by: { $0.key < $1.key }) {
            self.resources.append(Resource(resource: ref.description, location: nil, conditions: status.conditions))
            guard let live = live.resources[ref] else { continue }
            if let drift = Self.drift(compiled: status.conditions, live: live) {
                self.problems.append(
                    Problem(
                        severity: "warning", resource: ref.description, field: "status", message: drift, location: nil))
            }
        }
    }

    /// How the status the controller wrote differs from this analysis, or nil.
    static func drift(compiled: [meta.v1.Condition], live: LiveCluster.Resource) -> String? {
        let conditions = live.status?.conditions ?? []
        guard !conditions.isEmpty else {
            return
                "the controller has written no status for generation \(live.generation): is it running? (weftctl check)"
        }
        let observed = conditions.compactMap(\.observedGeneration).min() ?? live.status?.observedGeneration ?? 0
        if observed < live.generation {
            return "the status is for generation \(observed), the resource is at \(live.generation): the controller "
                + "has not caught up (is it running? weftctl check)"
        }
        for condition in compiled {
            guard let written = conditions.first(where: { $0.type == condition.type }) else { continue }
            if written.status != condition.status || written.reason != condition.reason {
                return "the controller reports \(condition.type)=\(written.status.rawValue) (\(written.reason)), this "
                    + "analysis \(condition.status.rawValue) (\(condition.reason)): another Weft version, or a change "
                    + "it has not compiled yet"
            }
        }
        return nil
    }

    init(path: String) {
        let loaded = ManifestLoader().load(path: path)
        for problem in loaded.problems {
            let location =
                problem.line.map { line in
                    "\(problem.file):\(line)" + (problem.column.map { ":\($0)" } ?? "")
                } ?? problem.file
            self.problems.append(
                Problem(
                    severity: problem.severity.rawValue, resource: problem.resource,
                    field: problem.field, message: problem.message, location: location))
        }
        // Generation 1 for every resource, as the controller's manifests mode reads a folder first.
        let result = WeftCompiler().compile(ManifestGenerations.assign(loaded.snapshot, previous: nil))
        let readProblems = Set(self.problems.map { "\($0.resource ?? "")|\($0.field ?? "")|\($0.message)" })
        for diagnostic in result.diagnostics {
            let resource = diagnostic.resource.description
            // Validation errors found while reading are not repeated.
            guard !readProblems.contains("\(resource)|\(diagnostic.field)|\(diagnostic.message)") else { continue }
            self.problems.append(
                Problem(
                    severity: diagnostic.severity.rawValue, resource: resource,
                    field: diagnostic.field.isEmpty ? nil : diagnostic.field,
                    message: diagnostic.message,
                    location: loaded.location(of: resource, field: diagnostic.field)?.description))
        }
        for (ref, status) in result.statuses.sorted(by: { $0.key < $1.key }) {
            self.resources.append(
                Resource(
                    resource: ref.description,
                    location: loaded.locations[ref.description]?.description,
                    conditions: status.conditions))
        }
    }

    var hasErrors: Bool { self.problems.contains { $0.severity == "error" } }

    func json() throws -> String {
        String(
            decoding: try JSONEncoder.sorted.encode([
                "problems": AnyEncodable(self.problems),
                "resources": AnyEncodable(self.resources),
            ]), as: UTF8.self)
    }

    func text() -> String {
        var out = ""
        if self.problems.isEmpty {
            out += "No problems found.\n"
        } else {
            for problem in self.problems {
                var line = problem.severity == "warning" ? "warning: " : ""
                if let resource = problem.resource {
                    line += "\(resource): "
                    if let field = problem.field { line += "\(field): " }
                    line += problem.message
                    if let location = problem.location { line += " (\(location))" }
                } else {
                    line += "\(problem.location ?? ""): \(problem.message)"
                }
                out += line + "\n"
            }
        }
        guard !self.resources.isEmpty else { return out }
        out += "\n"
        var rows = [["RESOURCE", "ACCEPTED", "RESOLVEDREFS", "REASON"]]
        for resource in self.resources {
            let accepted = resource.conditions.first { $0.type == ConditionType.accepted }
            let refs = resource.conditions.first { $0.type == ConditionType.resolvedRefs }
            let failing = resource.conditions.first { $0.status != .true }
            rows.append([
                resource.resource, accepted?.status.rawValue ?? "-", refs?.status.rawValue ?? "-",
                failing?.reason ?? "-",
            ])
        }
        let widths = (0..<4).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            out +=
                row.enumerated().map { column, cell in
                    column == 3 ? cell : cell.padding(toLength: widths[column] + 2, withPad: " ", startingAt: 0)
                }.joined() + "\n"
        }
        return out
    }
}

/// A failed read of the cluster (not a configuration problem, which is a `ValidationError`).
struct ClusterReadError: Error {
    var message: String
}

/// What `weftctl analyze` reads from a cluster: the compiler's input, and the generation and status of each
/// Weft resource as the API server has them.
struct LiveCluster {
    struct Resource {
        var generation: Int64
        var status: WeftStatus?
    }

    var snapshot: WeftSnapshot
    var resources: [ResourceRef: Resource] = [:]
    var settingsProblems: [String] = []

    static func read(_ client: KubeClient) async throws -> LiveCluster {
        var snapshot = WeftSnapshot(
            namespaces: try await client.listAll(core.v1.Namespace.self),
            pods: try await client.listAll(core.v1.Pod.self),
            services: try await client.listAll(core.v1.Service.self),
            endpointSlices: try await client.listAll(discovery.v1.EndpointSlice.self),
            deployments: try await client.listAll(apps.v1.Deployment.self),
            virtualServices: try await client.listAll(weft.v1alpha1.VirtualService.self),
            destinationPolicies: try await client.listAll(weft.v1alpha1.DestinationPolicy.self),
            meshTLSPolicies: try await client.listAll(weft.v1alpha1.MeshTLSPolicy.self),
            authorizationPolicies: try await client.listAll(weft.v1alpha1.AuthorizationPolicy.self))
        var live = LiveCluster(snapshot: snapshot)
        func record<R: WeftResource>(_ list: inout [R]) {
            for index in list.indices {
                live.resources[ResourceRef(list[index])] = Resource(
                    generation: list[index].metadata.generation ?? 1, status: list[index].status)
                // The compiler sees what the controller sees: spec, not the status it wrote.
                list[index].status = nil
            }
        }
        record(&snapshot.virtualServices)
        record(&snapshot.destinationPolicies)
        record(&snapshot.meshTLSPolicies)
        record(&snapshot.authorizationPolicies)
        do {
            let configMap = try await client.get(
                core.v1.ConfigMap.self, namespace: weft.v1alpha1.rootNamespace, name: "weft-config")
            let (settings, problems) = MeshSettings.from(configMapData: configMap.data ?? [:])
            snapshot.settings = settings
            live.settingsProblems = problems
        } catch let error as KubeClientError where error.isNotFound {
            // No weft-config: the defaults, as the controller uses them.
        }
        live.snapshot = snapshot
        return live
    }
}

/// Lets values of different types sit in one dictionary for encoding.
struct AnyEncodable: Encodable {
    let encodeValue: (any Encoder) throws -> Void

    init<T: Encodable>(_ value: T) {
        self.encodeValue = value.encode(to:)
    }

    func encode(to encoder: any Encoder) throws {
        try self.encodeValue(encoder)
    }
}
