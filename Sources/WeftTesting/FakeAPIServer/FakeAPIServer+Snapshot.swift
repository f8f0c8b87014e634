import WeftCompiler

extension FakeAPIServer {
    /// Seeds every object of `snapshot`: the cluster's own kinds and the four Weft kinds.
    public func seed(_ snapshot: WeftSnapshot) throws {
        for object in snapshot.namespaces { try self.seed(object) }
        for object in snapshot.pods { try self.seed(object) }
        for object in snapshot.services { try self.seed(object) }
        for object in snapshot.endpointSlices { try self.seed(object) }
        for object in snapshot.deployments { try self.seed(object) }
        for object in snapshot.virtualServices { try self.seed(object) }
        for object in snapshot.destinationPolicies { try self.seed(object) }
        for object in snapshot.meshTLSPolicies { try self.seed(object) }
        for object in snapshot.authorizationPolicies { try self.seed(object) }
    }
}
