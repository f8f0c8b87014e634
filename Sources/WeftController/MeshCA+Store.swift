import Foundation
import KubeClient
import KubeModel
import Logging
import WeftIdentity

extension MeshCA {
    /// Where the CA's material comes from and where a generated one is kept.
    public enum Store: Sendable {
        /// The Secret `<rootNamespace>/weft-ca` (cluster mode).
        case secret(any KubeAPI)
        /// `<directory>/weft-ca/{tls.crt,tls.key,ca.crt}` (manifests mode with `--state-dir`).
        case directory(String)
        /// Nowhere: a root generated at every start (manifests mode without `--state-dir`).
        case memory
    }

    /// Loads the CA from `store`, or generates a root and stores it when there is none.
    ///
    /// In the Secret: when two replicas race, the create of the second answers 409 AlreadyExists; it then reads the
    /// winner's Secret and uses it, so every replica signs with the same root. A Secret the user supplied (their
    /// own root, or an intermediate with its chain in `tls.crt`/`ca.crt`) is used as it is; one that does not load
    /// stops the controller with the reason (it is never overwritten).
    public static func load(
        from store: Store, rootNamespace: String, trustDomain: TrustDomain,
        svidLifetime: TimeInterval = CertificateValidity.defaultLeafLifetime,
        now: @escaping @Sendable () -> Date = { Date() }, logger: Logger
    ) async throws -> MeshCA {
        let secret: MeshCASecret
        switch store {
        case .memory:
            secret = try CertificateAuthority.generateRoot(
                trustDomain: trustDomain, now: now(), serialNumbers: .random)
            logger.info("mesh CA generated in memory", metadata: ["ca.trust_domain": "\(trustDomain)"])
        case .directory(let directory):
            secret = try Self.loadOrCreate(directory: directory, trustDomain: trustDomain, now: now, logger: logger)
        case .secret(let api):
            secret = try await Self.loadOrCreate(
                api: api, namespace: rootNamespace, trustDomain: trustDomain, now: now, logger: logger)
        }
        let authority: CertificateAuthority
        do {
            authority = try CertificateAuthority(secret: secret, trustDomain: trustDomain, serialNumbers: .random)
        } catch {
            throw MeshCAError("the mesh CA (\(Self.describe(store, rootNamespace))) is unusable: \(error)")
        }
        return MeshCA(authority: authority, rootNamespace: rootNamespace, svidLifetime: svidLifetime, now: now)
    }

    static func describe(_ store: Store, _ namespace: String) -> String {
        switch store {
        case .secret: "Secret \(namespace)/\(Self.secretName)"
        case .directory(let directory): "\(directory)/\(Self.secretName)"
        case .memory: "in memory"
        }
    }

    // MARK: - The Secret

    static func loadOrCreate(
        api: any KubeAPI, namespace: String, trustDomain: TrustDomain, now: @Sendable () -> Date, logger: Logger
    ) async throws -> MeshCASecret {
        if let existing = try await Self.read(api: api, namespace: namespace) {
            logger.info("mesh CA loaded", metadata: ["k8s.namespace": "\(namespace)", "k8s.name": "\(secretName)"])
            return existing
        }
        let generated = try CertificateAuthority.generateRoot(
            trustDomain: trustDomain, now: now(), serialNumbers: .random)
        var object = core.v1.Secret.new(namespace: namespace, name: Self.secretName)
        object.type = MeshCASecret.secretType
        object.data = generated.secretData.mapValues { $0.base64EncodedString() }
        object.metadata.labels = ["app.kubernetes.io/part-of": "weft", "app.kubernetes.io/component": "mesh-ca"]
        do {
            _ = try await api.create(object)
            logger.info("mesh CA generated", metadata: ["k8s.namespace": "\(namespace)", "k8s.name": "\(secretName)"])
            return generated
        } catch let error as KubeClientError where error.isConflict {
            // Another replica created it first: use the winner's root.
            guard let winner = try await Self.read(api: api, namespace: namespace) else {
                throw MeshCAError("Secret \(namespace)/\(secretName) exists (409 on create) but cannot be read")
            }
            logger.info(
                "mesh CA created by another replica; using it",
                metadata: ["k8s.namespace": "\(namespace)", "k8s.name": "\(secretName)"])
            return winner
        }
    }

    /// The Secret's CA material; nil when there is no such Secret.
    static func read(api: any KubeAPI, namespace: String) async throws -> MeshCASecret? {
        let secret: core.v1.Secret
        do {
            secret = try await api.get(core.v1.Secret.self, namespace: namespace, name: Self.secretName)
        } catch let error as KubeClientError where error.isNotFound {
            return nil
        }
        var data: [String: Data] = [:]
        for (key, value) in secret.data ?? [:] {
            guard let bytes = Data(base64Encoded: value) else {
                throw MeshCAError("Secret \(namespace)/\(secretName): data.\(key) is not base64")
            }
            data[key] = bytes
        }
        // `stringData` is write-only on a real API server; a fake or a hand-made object may still carry it.
        for (key, value) in secret.stringData ?? [:] where data[key] == nil { data[key] = Data(value.utf8) }
        do {
            return try MeshCASecret(secretData: data)
        } catch {
            throw MeshCAError("Secret \(namespace)/\(secretName): \(error)")
        }
    }

    // MARK: - The state directory

    static func loadOrCreate(
        directory: String, trustDomain: TrustDomain, now: @Sendable () -> Date, logger: Logger
    ) throws -> MeshCASecret {
        let folder = URL(fileURLWithPath: directory).appendingPathComponent(Self.secretName)
        let keys = [MeshCASecret.certificateKey, MeshCASecret.privateKeyKey, MeshCASecret.trustRootsKey]
        let files = Dictionary(uniqueKeysWithValues: keys.map { ($0, folder.appendingPathComponent($0)) })
        if FileManager.default.fileExists(atPath: files[MeshCASecret.certificateKey]?.path ?? "") {
            var data: [String: Data] = [:]
            for (key, url) in files where FileManager.default.fileExists(atPath: url.path) {
                data[key] = try Data(contentsOf: url)
            }
            logger.info("mesh CA loaded", metadata: ["ca.path": "\(folder.path)"])
            return try MeshCASecret(secretData: data)
        }
        let generated = try CertificateAuthority.generateRoot(
            trustDomain: trustDomain, now: now(), serialNumbers: .random)
        try FileManager.default.createDirectory(
            at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for (key, value) in generated.secretData {
            guard let url = files[key] else { continue }
            try value.write(to: url, options: .atomic)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
        }
        logger.info("mesh CA generated", metadata: ["ca.path": "\(folder.path)"])
        return generated
    }
}
