// Placeholder; replaced by the validation work.
extension weft.v1alpha1.VirtualService { public func validate() -> [FieldError] { [] } }
extension weft.v1alpha1.DestinationPolicy { public func validate() -> [FieldError] { [] } }
extension weft.v1alpha1.MeshTLSPolicy { public func validate() -> [FieldError] { [] } }
extension weft.v1alpha1.AuthorizationPolicy { public func validate() -> [FieldError] { [] } }
