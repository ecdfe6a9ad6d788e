// swift-tools-version:6.1
// In-process costs of the public API, with malloc counts: `swift package benchmark` in this folder.
// A package of its own so the main build and CI do not build the benchmark framework.
import PackageDescription

let package = Package(
    name: "RingportBenchmarks",
    dependencies: [
        .package(name: "Ringport", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "RingportBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Ringport", package: "Ringport"),
                .product(name: "RingportMiniport", package: "Ringport"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/RingportBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ],
    swiftLanguageModes: [.v6]
)
