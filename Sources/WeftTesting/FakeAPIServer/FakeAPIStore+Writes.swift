import Foundation
import KubeModel

/// The PATCH formats, by content type.
enum FakePatchType: Sendable, Hashable {
    case merge, json, apply, strategic

    init?(contentType: String) {
        switch contentType {
        case "application/merge-patch+json": self = .merge
        case "application/json-patch+json": self = .json
        case "application/apply-patch+yaml": self = .apply
        case "application/strategic-merge-patch+json": self = .strategic
        default: return nil
        }
    }
}

/// Create, update, patch and delete with the API server's rules: server-owned metadata, optimistic
/// concurrency, generation, the status subresource, finalizers and managedFields.
extension FakeAPIStore {
    // MARK: - Create

    mutating func create(
        _ resource: FakeAPIResource, namespace: String?, body: JSONValue, fieldManager: String?,
        operation: String = "Update"
    ) throws(FakeAPIError) -> JSONValue {
        var object = try Self.checkedObject(body, resource)
        if FakeObject.meta(object, "resourceVersion") != nil {
            throw FakeAPIError.internalError("resourceVersion should not be set on objects to be created")
        }
        if resource.namespaced {
            if let stated = FakeObject.meta(object, "namespace"), stated != namespace {
                throw FakeAPIError.badRequest(
                    "the namespace of the provided object does not match the namespace sent on the request")
            }
            object = FakeObject.settingMeta(object, "namespace", namespace.map { .string($0) })
        } else {
            object = FakeObject.settingMeta(object, "namespace", nil)
        }
        var name = FakeObject.meta(object, "name")
        if name == nil, let prefix = FakeObject.meta(object, "generateName") {
            for _ in 0..<8 {
                let candidate = prefix + FakeObject.randomSuffix()
                name = candidate
                if self.object(resource, ObjectKey(namespace: namespace ?? "", name: candidate)) == nil { break }
            }
        }
        guard let name else {
            throw FakeAPIError.invalid(
                resource, name: "", field: "metadata.name", causeReason: "FieldValueRequired",
                causeMessage: "Required value: name or generateName is required")
        }
        try Self.validateName(name, resource)
        let key = ObjectKey(namespace: resource.namespaced ? namespace ?? "" : "", name: name)
        if self.object(resource, key) != nil { throw FakeAPIError.alreadyExists(resource, name: name) }
        object = FakeObject.settingMeta(object, "name", .string(name))
        object = FakeObject.settingMeta(object, "uid", .string(UUID().uuidString.lowercased()))
        object = FakeObject.settingMeta(object, "creationTimestamp", .string(self.now))
        object = FakeObject.settingMeta(object, "generation", .int(1))
        for field in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
            object = FakeObject.settingMeta(object, field, nil)
        }
        if resource.hasStatus { object = FakeObject.setting(object, "status", nil) }
        if let fieldManager {
            object = FakeObject.recordingManager(
                object, manager: fieldManager, operation: operation, apiVersion: resource.apiVersion,
                subresource: nil, time: self.now)
        }
        return self.commit(.added, resource, key, object: object, previous: nil)
    }

    // MARK: - Update (PUT)

    mutating func update(
        _ resource: FakeAPIResource, _ key: ObjectKey, body: JSONValue, status: Bool, fieldManager: String?
    ) throws(FakeAPIError) -> JSONValue {
        let candidate = try Self.checkedObject(body, resource)
        try Self.checkIdentity(candidate, key, resource)
        guard let current = self.object(resource, key) else { throw FakeAPIError.notFound(resource, name: key.name) }
        try Self.checkPreconditions(candidate, current, resource, key)
        let next = status ? Self.statusUpdate(candidate, current) : Self.mainUpdate(candidate, current, key, resource)
        return try self.finishUpdate(
            next, current, resource, key, status: status, manager: fieldManager, operation: "Update")
    }

    // MARK: - Patch

    /// Applies a patch; server-side apply creates the object when there is none (`created` is then true).
    mutating func patch(
        _ resource: FakeAPIResource, _ key: ObjectKey, type: FakePatchType, body: JSONValue, status: Bool,
        fieldManager: String?
    ) throws(FakeAPIError) -> (object: JSONValue, created: Bool) {
        if type == .apply { try Self.checkApplyConfiguration(body, resource) }
        guard let current = self.object(resource, key) else {
            guard type == .apply, !status else { throw FakeAPIError.notFound(resource, name: key.name) }
            var object = JSONPatching.mergePatch(nil, with: body)
            try Self.checkIdentity(object, key, resource)
            object = FakeObject.settingMeta(object, "name", .string(key.name))
            let created = try self.create(
                resource, namespace: resource.namespaced ? key.namespace : nil, body: object,
                fieldManager: fieldManager, operation: "Apply")
            return (created, true)
        }
        let patched: JSONValue
        switch type {
        case .merge, .strategic, .apply:
            patched = JSONPatching.mergePatch(current, with: body)
        case .json:
            do throws(JSONPatching.PatchError) {
                patched = try JSONPatching.jsonPatch(current, operations: try JSONPatching.operations(body))
            } catch {
                throw error.isMalformed
                    ? FakeAPIError.badRequest(error.message) : FakeAPIError.unprocessable(error.message)
            }
        }
        let candidate = try Self.checkedObject(patched, resource)
        try Self.checkIdentity(candidate, key, resource)
        try Self.checkPreconditions(candidate, current, resource, key)
        let next = status ? Self.statusUpdate(candidate, current) : Self.mainUpdate(candidate, current, key, resource)
        let object = try self.finishUpdate(
            next, current, resource, key, status: status, manager: fieldManager,
            operation: type == .apply ? "Apply" : "Update")
        return (object, false)
    }

    // MARK: - Delete

    /// Deletes an object, or with finalizers marks it deleting. Answers what the real server answers: the
    /// object for kinds that return it, otherwise a `Status` of success.
    mutating func delete(
        _ resource: FakeAPIResource, _ key: ObjectKey, options: JSONValue?
    ) throws(FakeAPIError)
        -> JSONValue
    {
        guard let current = self.object(resource, key) else { throw FakeAPIError.notFound(resource, name: key.name) }
        let preconditions = options?["preconditions"]
        if let uid = preconditions?["uid"]?.stringValue, uid != FakeObject.meta(current, "uid") ?? "" {
            throw FakeAPIError.preconditionFailed(
                resource, name: key.name, field: "UID in precondition", wanted: uid,
                actual: FakeObject.meta(current, "uid") ?? "")
        }
        if let version = preconditions?["resourceVersion"]?.stringValue,
            version != FakeObject.meta(current, "resourceVersion") ?? ""
        {
            throw FakeAPIError.preconditionFailed(
                resource, name: key.name, field: "ResourceVersion in precondition", wanted: version,
                actual: FakeObject.meta(current, "resourceVersion") ?? "")
        }
        let finalizers = FakeObject.metadata(current)["finalizers"]?.arrayValue ?? []
        if !finalizers.isEmpty {
            if FakeObject.meta(current, "deletionTimestamp") != nil { return current }
            var next = FakeObject.settingMeta(current, "deletionTimestamp", .string(self.now))
            next = FakeObject.settingMeta(next, "deletionGracePeriodSeconds", .int(0))
            next = FakeObject.settingMeta(next, "generation", .int((FakeObject.generation(current) ?? 0) + 1))
            return self.commit(.modified, resource, key, object: next, previous: current)
        }
        let deleted = self.commit(.deleted, resource, key, object: current, previous: current)
        if resource.returnsDeletedObject { return deleted }
        var details: JSONObject = [
            "name": .string(key.name), "kind": .string(resource.plural),
            "uid": .string(FakeObject.meta(current, "uid") ?? ""),
        ]
        if !resource.group.isEmpty { details["group"] = .string(resource.group) }
        return .object([
            "kind": "Status", "apiVersion": "v1", "metadata": .object([:]), "status": "Success",
            "details": .object(details),
        ])
    }

    // MARK: - Shared steps

    /// Stores an updated object: bumps `generation` when anything outside metadata and status changed, finishes
    /// a deletion when the last finalizer went, writes nothing when nothing changed, and records the manager.
    private mutating func finishUpdate(
        _ next: JSONValue, _ current: JSONValue, _ resource: FakeAPIResource, _ key: ObjectKey, status: Bool,
        manager: String?, operation: String
    ) throws(FakeAPIError) -> JSONValue {
        var next = next
        if resource.isCustom, resource.hasStatus {
            // The Weft CRDs' schema (and metav1.Condition) caps a condition's message at 32,768 characters.
            let conditions = next["status"]?["conditions"]?.arrayValue ?? []
            for (index, condition) in conditions.enumerated() {
                let length = condition["message"]?.stringValue?.unicodeScalars.count ?? 0
                guard length > 32_768 else { continue }
                throw FakeAPIError.invalid(
                    resource, name: key.name, field: "status.conditions[\(index)].message",
                    causeReason: "FieldValueTooLong", causeMessage: "Too long: may not be more than 32768 bytes")
            }
        }
        if !status, FakeObject.specPart(next) != FakeObject.specPart(current) {
            next = FakeObject.settingMeta(next, "generation", .int((FakeObject.generation(current) ?? 0) + 1))
        }
        let finalizers = Set((FakeObject.metadata(next)["finalizers"]?.arrayValue ?? []).compactMap(\.stringValue))
        if FakeObject.meta(current, "deletionTimestamp") != nil {
            let before = Set(
                (FakeObject.metadata(current)["finalizers"]?.arrayValue ?? []).compactMap(\.stringValue))
            let added = finalizers.subtracting(before).sorted()
            if !added.isEmpty {
                throw FakeAPIError.invalid(
                    resource, name: key.name, field: "metadata.finalizers", causeReason: "FieldValueForbidden",
                    causeMessage: "Forbidden: no new finalizers can be added if the object is being deleted, "
                        + "found new finalizers \(added)")
            }
            if finalizers.isEmpty { return self.commit(.deleted, resource, key, object: next, previous: current) }
        }
        if FakeObject.sameContent(next, current) { return current }
        if let manager {
            next = FakeObject.recordingManager(
                next, manager: manager, operation: operation, apiVersion: resource.apiVersion,
                subresource: status ? "status" : nil, time: self.now)
        }
        return self.commit(.modified, resource, key, object: next, previous: current)
    }

    /// A write to the main resource: server-owned metadata stays, and `status` stays when it is a subresource.
    private static func mainUpdate(
        _ candidate: JSONValue, _ current: JSONValue, _ key: ObjectKey, _ resource: FakeAPIResource
    ) -> JSONValue {
        var next = FakeObject.settingMeta(candidate, "name", .string(key.name))
        next = FakeObject.settingMeta(next, "namespace", resource.namespaced ? .string(key.namespace) : nil)
        let currentMeta = FakeObject.metadata(current)
        for field in [
            "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
            "resourceVersion",
        ] {
            next = FakeObject.settingMeta(next, field, currentMeta[field])
        }
        if FakeObject.metadata(candidate)["managedFields"] == nil {
            next = FakeObject.settingMeta(next, "managedFields", currentMeta["managedFields"])
        }
        if resource.hasStatus { next = FakeObject.setting(next, "status", current["status"]) }
        return next
    }

    /// A write to `/status`: only `status` changes (and goes away when the body has none).
    private static func statusUpdate(_ candidate: JSONValue, _ current: JSONValue) -> JSONValue {
        FakeObject.setting(current, "status", candidate["status"])
    }

    /// The body as an object of this resource: apiVersion and kind filled in when missing, refused when wrong.
    private static func checkedObject(
        _ body: JSONValue, _ resource: FakeAPIResource
    ) throws(FakeAPIError)
        -> JSONValue
    {
        guard case .object(var members) = body else {
            throw FakeAPIError.badRequest(
                "the object provided is unrecognized (must be of type \(resource.kind)): expected an object, "
                    + "found \(body.kindDescription)")
        }
        if let apiVersion = members["apiVersion"]?.stringValue, !apiVersion.isEmpty,
            apiVersion != resource.apiVersion
        {
            throw FakeAPIError.badRequest(
                "the API version in the data (\(apiVersion)) does not match the expected API version "
                    + "(\(resource.apiVersion))")
        }
        if let kind = members["kind"]?.stringValue, !kind.isEmpty, kind != resource.kind {
            throw FakeAPIError.badRequest(
                "the kind in the data (\(kind)) does not match the expected kind (\(resource.kind))")
        }
        if let metadata = members["metadata"], metadata.objectValue == nil {
            throw FakeAPIError.badRequest("metadata must be an object, found \(metadata.kindDescription)")
        }
        members["apiVersion"] = .string(resource.apiVersion)
        members["kind"] = .string(resource.kind)
        if members["metadata"] == nil { members["metadata"] = .object([:]) }
        return .object(members)
    }

    /// The name and namespace in the body must be those of the URL (or absent).
    private static func checkIdentity(
        _ object: JSONValue, _ key: ObjectKey, _ resource: FakeAPIResource
    )
        throws(FakeAPIError)
    {
        if let name = FakeObject.meta(object, "name"), name != key.name {
            throw FakeAPIError.badRequest(
                "the name of the object (\(name)) does not match the name on the URL (\(key.name))")
        }
        if resource.namespaced, let namespace = FakeObject.meta(object, "namespace"), namespace != key.namespace {
            throw FakeAPIError.badRequest(
                "the namespace of the provided object does not match the namespace sent on the request")
        }
    }

    /// Optimistic concurrency: a resourceVersion (or uid) in the body must be the current one.
    private static func checkPreconditions(
        _ candidate: JSONValue, _ current: JSONValue, _ resource: FakeAPIResource, _ key: ObjectKey
    ) throws(FakeAPIError) {
        if let version = FakeObject.meta(candidate, "resourceVersion"),
            version != FakeObject.meta(current, "resourceVersion")
        {
            throw FakeAPIError.conflict(resource, name: key.name)
        }
        if let uid = FakeObject.meta(candidate, "uid"), uid != FakeObject.meta(current, "uid") {
            throw FakeAPIError.preconditionFailed(
                resource, name: key.name, field: "UID in precondition", wanted: uid,
                actual: FakeObject.meta(current, "uid") ?? "")
        }
    }

    /// Server-side apply needs the full identity of what it applies.
    private static func checkApplyConfiguration(_ body: JSONValue, _ resource: FakeAPIResource) throws(FakeAPIError) {
        guard body.objectValue != nil else {
            throw FakeAPIError.badRequest("error decoding YAML: the applied configuration must be an object")
        }
        let version = body["apiVersion"]?.stringValue ?? ""
        guard version == resource.apiVersion else {
            throw FakeAPIError.badRequest(
                "Incorrect version specified in apply patch. Specified patch version: \(version), expected: "
                    + resource.apiVersion)
        }
        let kind = body["kind"]?.stringValue ?? ""
        guard kind == resource.kind else {
            throw FakeAPIError.badRequest(
                "Incorrect kind specified in apply patch. Specified patch kind: \(kind), expected: \(resource.kind)")
        }
        if body["metadata"]?["managedFields"] != nil {
            throw FakeAPIError.badRequest("metadata.managedFields must be nil")
        }
    }

    private static func validateName(_ name: String, _ resource: FakeAPIResource) throws(FakeAPIError) {
        if let problem = resource.nameProblem(name) {
            throw FakeAPIError.invalid(
                resource, name: name, field: "metadata.name", causeReason: "FieldValueInvalid",
                causeMessage: "Invalid value: \"\(name)\": \(problem)")
        }
    }
}
