// swift-tools-version: 6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "weft",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "weftctl", targets: ["weftctl"]),
        .library(name: "KubeModel", targets: ["KubeModel"]),
        .library(name: "WeftAPI", targets: ["WeftAPI"]),
        .library(name: "ProxyConfig", targets: ["ProxyConfig"]),
        .library(name: "WeftCompiler", targets: ["WeftCompiler"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // MARK: - Pure layer (Foundation only; no NIO, no clock, no randomness)
        .target(name: "KubeModel", swiftSettings: strictSettings),
        .target(name: "WeftAPI", dependencies: ["KubeModel"], swiftSettings: strictSettings),
        .target(name: "ProxyConfig", swiftSettings: strictSettings),
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
        // MARK: - Executables
        .executableTarget(
            name: "weftctl",
            dependencies: [
                "KubeModel", "WeftAPI", "ProxyConfig", "WeftCompiler", "WeftManifests",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "WeftBench",
            dependencies: ["WeftCompiler", "WeftTesting"],
            path: "Benchmarks/WeftBench",
            swiftSettings: strictSettings
        ),
        // MARK: - Test support
        .target(
            name: "WeftTesting",
            dependencies: ["KubeModel", "WeftAPI", "ProxyConfig", "WeftCompiler", "WeftManifests"],
            swiftSettings: strictSettings
        ),
        // MARK: - Tests
        .testTarget(name: "KubeModelTests", dependencies: ["KubeModel", "WeftTesting"], swiftSettings: strictSettings),
        .testTarget(
            name: "WeftAPITests",
            dependencies: ["WeftAPI", "WeftTesting", "WeftManifests", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "ProxyConfigTests", dependencies: ["ProxyConfig"], swiftSettings: strictSettings),
        .testTarget(
            name: "WeftCompilerTests",
            dependencies: ["WeftCompiler", "WeftTesting", "WeftManifests"],
            exclude: ["Fixtures"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WeftManifestsTests",
            dependencies: ["WeftManifests", "WeftTesting"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "weftctlTests",
            dependencies: ["WeftTesting", "ProxyConfig", "KubeModel"],
            swiftSettings: strictSettings
        ),
    ]
)
