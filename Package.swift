// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Ringport",
    products: [
        .library(name: "RingportCore", targets: ["RingportCore"]),
        .library(name: "RingportSystem", targets: ["RingportSystem"]),
        .executable(name: "ringport-peer", targets: ["ringport-peer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // C: only what Swift cannot call (futex, prctl) and the shared layout structs.
        .target(name: "CRingportShim"),
        // Rings, iterators, elements, segment layout and checked mode. No I/O.
        .target(
            name: "RingportCore",
            dependencies: [
                "CRingportShim",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: strict
        ),
        // The OS layer: shared-memory segments, mappings, futex, process control.
        .target(
            name: "RingportSystem",
            dependencies: [
                "CRingportShim",
                "RingportCore",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        // A two-process transfer through one queue (OS side and driver side), for tests and benchmarks.
        .target(name: "RingTransfer", dependencies: ["RingportCore", "RingportSystem"], swiftSettings: strict),
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
        // Spawning the package's executables from tests, with bounded waits.
        .target(name: "TestSupport", path: "Tests/Support"),
        .testTarget(name: "RingportCoreTests", dependencies: ["RingportCore", "CRingportShim"], swiftSettings: strict),
        .testTarget(
            name: "RingportSystemTests",
            dependencies: ["RingportSystem", "RingportCore", "TestSupport"],
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
