// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Ringport",
    products: [
        // The protocol library: a client imports `Ringport` only.
        .library(name: "Ringport", targets: ["Ringport"]),
        // The driver SDK: MiniportDriver and its models, MiniportContext, and the embedding API (Miniport).
        .library(name: "RingportMiniport", targets: ["RingportMiniport"]),
        .executable(name: "ringportd", targets: ["ringportd"]),
        .executable(name: "ringport", targets: ["ringport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.5.0"),
    ],
    targets: [
        // C: only what Swift cannot call (futex, prctl) and the shared layout structs.
        .target(name: "_RingportShim"),
        // Rings, iterators, elements, segment layout and checked mode. No I/O.
        .target(
            name: "RingportCore",
            dependencies: [
                "_RingportShim",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: strict
        ),
        // The OS layer: shared-memory segments, mappings, futex, process control.
        .target(
            name: "RingportSystem",
            dependencies: [
                "_RingportShim",
                "RingportCore",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        // The protocol library: bindings, packet and buffer pools, send and send-complete.
        .target(name: "Ringport", dependencies: ["RingportCore", "RingportSystem"], swiftSettings: strict),
        // The miniport: control plane, framework, driver models and built-in drivers.
        .target(
            name: "RingportMiniport",
            dependencies: [
                "RingportCore", "RingportSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // A two-process transfer through one queue (OS side and driver side), for tests and benchmarks.
        .target(name: "RingTransfer", dependencies: ["RingportCore", "RingportSystem"], swiftSettings: strict),
        // The miniport launcher.
        .executableTarget(
            name: "ringportd",
            dependencies: [
                "RingportMiniport", "RingportCore", "RingportSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        // The command-line protocol: stress, stat, bench.
        .executableTarget(
            name: "ringport",
            dependencies: [
                "Ringport", "RingportCore", "RingportSystem", "_RingportShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strict
        ),
        // Plays the driver (or the OS) of a bare ring in another process: tests and benchmarks.
        .executableTarget(
            name: "ringport-peer",
            dependencies: [
                "RingTransfer",
                "RingportCore",
                "RingportSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // Drivers written outside the built-ins against the SDK's public API only, one per driver model.
        .target(
            name: "ExampleDrivers",
            dependencies: [
                "RingportMiniport", "RingportCore", .product(name: "DequeModule", package: "swift-collections"),
            ],
            path: "Examples/ExampleDrivers",
            swiftSettings: strict
        ),
        // For tests: a miniport that serves the protocol library a binding and breaks one rule at a time.
        .executableTarget(
            name: "hostile-miniport",
            dependencies: ["RingportCore", "RingportSystem"],
            swiftSettings: strict
        ),
        // A protocol that breaks one ring rule at a time against a real miniport (tests only).
        .executableTarget(
            name: "hostile-protocol",
            dependencies: ["RingportCore", "RingportSystem"],
            swiftSettings: strict
        ),
        // Fuzz harnesses (tools/fuzz.sh). In a normal build each is a replay executable over corpus files;
        // built with -DFUZZING and -sanitize=fuzzer its entry point is libFuzzer's.
        .target(name: "FuzzSupport", path: "Fuzz/Sources/FuzzSupport", swiftSettings: strict),
        .executableTarget(
            name: "fuzz-control-message",
            dependencies: ["FuzzSupport", "RingportCore"],
            path: "Fuzz/Sources/fuzz-control-message",
            swiftSettings: strict
        ),
        // The framework and the library in one process, turn by turn, over real segments.
        .target(
            name: "FuzzRig",
            dependencies: [
                "FuzzSupport", "Ringport", "RingportMiniport", "RingportCore", "RingportSystem", "ExampleDrivers",
            ],
            path: "Fuzz/Sources/FuzzRig",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "fuzz-miniport-segment",
            dependencies: ["FuzzRig", "FuzzSupport", "Ringport", "RingportCore"],
            path: "Fuzz/Sources/fuzz-miniport-segment",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "fuzz-library-segment",
            dependencies: ["FuzzRig", "FuzzSupport", "Ringport", "RingportCore"],
            path: "Fuzz/Sources/fuzz-library-segment",
            swiftSettings: strict
        ),
        // Spawning the package's executables from tests, with bounded waits.
        .target(
            name: "TestSupport",
            dependencies: [
                "RingportCore", "RingportSystem",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Tests/Support"
        ),
        // Execs a test's process with PR_SET_PDEATHSIG armed, so a killed test run leaves no process behind.
        .executableTarget(name: "spawn-guard", dependencies: ["RingportSystem"], path: "Tests/SpawnGuard"),
        // A stand-in test process for the tests of TestSupport's spawning.
        .executableTarget(name: "spawn-probe", dependencies: ["TestSupport"], path: "Tests/SpawnProbe"),
        .testTarget(name: "RingportCoreTests", dependencies: ["RingportCore", "_RingportShim"], swiftSettings: strict),
        .testTarget(
            name: "RingportSystemTests",
            dependencies: ["RingportSystem", "RingportCore", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RingportMiniportTests",
            dependencies: [
                "Ringport", "RingportMiniport", "RingportCore", "RingportSystem", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RingportSDKTests",
            dependencies: [
                "ExampleDrivers", "Ringport", "RingportMiniport", "RingportCore", "RingportSystem",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Compiles snippets against the built modules and expects the ownership rules' compiler errors.
        .testTarget(
            name: "RingportCompileFailTests",
            dependencies: ["Ringport", "ExampleDrivers", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RingportIntegrationTests",
            dependencies: ["RingTransfer", "RingportSystem", "RingportCore", "TestSupport"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
