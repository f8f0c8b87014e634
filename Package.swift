// swift-tools-version: 6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

/// The sidecar's release link on Linux, for its resident memory (hack/bench-proxy's idle RSS: 35 to 25.5 MiB with a
/// static stdlib): lld; no symbol table exported for dlopen'ed code that never comes (the static stdlib's link
/// arguments ask for -export-dynamic, 5 MB of dynamic symbols that the loader touches); and relative relocations
/// packed (RELR: 3.4 MB of .rela.dyn, all read at every start, becomes 28 KB; glibc 2.36 or later, as in
/// debian:bookworm). The binary stays position-independent. lld ships with the Swift toolchain.
let proxyReleaseLinking: [LinkerSetting] = [
    .unsafeFlags(
        ["-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"],
        .when(platforms: [.linux], configuration: .release))
]

let package = Package(
    name: "weft",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "weftctl", targets: ["weftctl"]),
        .executable(name: "weft-controller", targets: ["weft-controller"]),
        .library(name: "KubeModel", targets: ["KubeModel"]),
        .library(name: "WeftAPI", targets: ["WeftAPI"]),
        .library(name: "ProxyConfig", targets: ["ProxyConfig"]),
        .library(name: "WeftCompiler", targets: ["WeftCompiler"]),
        .library(name: "WeftIdentity", targets: ["WeftIdentity"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        // OTLP/HTTP only: the OTLP/gRPC trait would bring grpc-swift into every build.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // MARK: - Pure layer (Foundation only; no NIO, no clock, no randomness)
        .target(name: "KubeModel", swiftSettings: strictSettings),
        .target(name: "WeftAPI", dependencies: ["KubeModel"], swiftSettings: strictSettings),
        .target(name: "ProxyConfig", swiftSettings: strictSettings),
        .target(name: "ProxyCore", dependencies: ["ProxyConfig"], swiftSettings: strictSettings),
        // SPIFFE IDs, the mesh CA, CSRs, SVID verification, rotation timing: pure (time and randomness passed in).
        .target(
            name: "WeftIdentity",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WeftCompiler",
            dependencies: ["KubeModel", "WeftAPI", "ProxyConfig"],
            swiftSettings: strictSettings
        ),
        // MARK: - Manifest loading (YAML files -> typed resources, with file/line diagnostics)
        .target(
            name: "WeftManifests",
            dependencies: ["KubeModel", "WeftAPI", "WeftCompiler", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictSettings
        ),
        // MARK: - The config push protocol (generated from proto/ by hack/gen-push-proto, and its pure state)
        .target(
            name: "WeftPush",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strictSettings
        ),
        // MARK: - I/O layer
        .target(
            name: "WeftHTTP",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "KubeClient",
            dependencies: [
                "KubeModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WeftController",
            dependencies: [
                "KubeModel", "WeftAPI", "ProxyConfig", "WeftCompiler", "WeftManifests", "KubeClient", "WeftHTTP",
                "WeftPush", "WeftIdentity",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "WeftProxy",
            dependencies: [
                "ProxyConfig", "ProxyCore", "WeftHTTP", "WeftPush", "WeftIdentity",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings
        ),
        // MARK: - Executables
        .executableTarget(
            name: "weft-controller",
            dependencies: [
                "WeftController", "WeftCompiler", "KubeClient", "WeftIdentity",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "weft-proxy",
            dependencies: [
                "WeftProxy", "WeftIdentity",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings,
            linkerSettings: proxyReleaseLinking
        ),
        .executableTarget(
            name: "weftctl",
            dependencies: [
                "KubeModel", "ProxyConfig", "WeftAPI", "WeftCompiler", "WeftManifests",
                // `weftctl demo` runs the controller, the proxies and the demo's apps in its own process.
                "WeftController", "WeftProxy", "WeftHTTP", "WeftIdentity",
                // `weftctl check` and `weftctl analyze` without -f read the cluster.
                "KubeClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "WeftBench",
            dependencies: [
                "WeftCompiler", "WeftTesting", "WeftController", "WeftProxy", "KubeClient", "KubeModel", "WeftAPI",
                "WeftIdentity",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Benchmarks/WeftBench",
            swiftSettings: strictSettings
        ),
        // libFuzzer target (hack/fuzz-libfuzzer): without -DWEFT_FUZZ it is a replay tool, so a normal build works.
        .executableTarget(
            name: "WeftFuzz",
            dependencies: [
                "ProxyConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Fuzz/WeftFuzz",
            swiftSettings: strictSettings
        ),
        // MARK: - Test support
        .target(
            name: "WeftTesting",
            dependencies: [
                "KubeModel", "WeftAPI", "ProxyConfig", "WeftCompiler", "WeftManifests", "KubeClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // MARK: - Tests
        .testTarget(name: "KubeModelTests", dependencies: ["KubeModel"], swiftSettings: strictSettings),
        .testTarget(
            name: "WeftAPITests",
            dependencies: ["KubeModel", "WeftAPI", "WeftTesting", .product(name: "Yams", package: "Yams")],
            exclude: ["Fixtures"],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "ProxyConfigTests", dependencies: ["ProxyConfig"], swiftSettings: strictSettings),
        .testTarget(
            name: "WeftIdentityTests",
            dependencies: [
                "WeftIdentity", "WeftTesting",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "ProxyCoreTests", dependencies: ["ProxyCore", "ProxyConfig"], swiftSettings: strictSettings),
        .testTarget(name: "WeftPushTests", dependencies: ["WeftPush"], swiftSettings: strictSettings),
        .testTarget(
            name: "WeftMeshTests",
            dependencies: [
                "WeftController", "WeftProxy", "WeftCompiler", "ProxyConfig", "KubeModel", "WeftHTTP", "KubeClient",
                "WeftTesting", "WeftManifests", "WeftAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "KubeClientTests",
            dependencies: [
                "KubeClient", "KubeModel", "WeftAPI", "WeftTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WeftCompilerTests",
            dependencies: ["KubeModel", "WeftAPI", "ProxyConfig", "WeftCompiler", "WeftTesting", "WeftManifests"],
            exclude: ["Fixtures"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WeftManifestsTests",
            dependencies: ["KubeModel", "WeftAPI", "WeftCompiler", "WeftManifests"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WeftControllerTests",
            dependencies: [
                "WeftController", "KubeClient", "WeftTesting", "KubeModel", "WeftAPI", "WeftCompiler", "WeftManifests",
                "WeftIdentity",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WeftProxyTests",
            dependencies: [
                "WeftProxy", "ProxyConfig", "ProxyCore", "WeftController", "WeftCompiler", "WeftIdentity", "WeftPush",
                "WeftTesting", "WeftHTTP",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "weftctlTests",
            dependencies: ["ProxyConfig", "KubeModel"],
            swiftSettings: strictSettings
        ),
    ]
)
