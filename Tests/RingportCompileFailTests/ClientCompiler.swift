import Foundation

/// Compiles a client source file against the package's built modules, as a program outside the package
/// would (no `@testable`, no `-package-name`).
///
/// It runs `swiftc -emit-sil`, not `-typecheck`: the ownership errors (used after consume, consumed more than
/// once) come from the move checker, a mandatory SIL pass that `-typecheck` never reaches.
struct ClientCompiler: Sendable {
    /// A build's products directory: `Modules/` holds the `.swiftmodule`s.
    let products: URL

    struct Result: Sendable {
        /// Nil if the compiler did not finish in time.
        var status: Int32?
        var diagnostics: String
        var succeeded: Bool { status == 0 }
        var errors: [String] { diagnostics.split(separator: "\n").map(String.init).filter { $0.contains("error:") } }
        var warnings: [String] {
            diagnostics.split(separator: "\n").map(String.init).filter { $0.contains("warning:") }
        }
    }

    static func hasModules(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent("Modules/Ringport.swiftmodule").path)
    }

    /// The build this test bundle belongs to (swift test runs `<products>/<Package>PackageTests.xctest`).
    static let debug: ClientCompiler? = {
        var directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        while directory.path != "/" && !hasModules(directory) { directory = directory.deletingLastPathComponent() }
        return hasModules(directory) ? ClientCompiler(products: directory) : nil
    }()

    /// A release build's products, when `RINGPORT_PRODUCTS` names one (tools/test.sh builds it fresh).
    static let release: ClientCompiler? = {
        guard let path = ProcessInfo.processInfo.environment["RINGPORT_PRODUCTS"], !path.isEmpty else { return nil }
        let directory = URL(fileURLWithPath: path).resolvingSymlinksInPath()
        guard hasModules(directory), directory.path != debug?.products.path else { return nil }
        return ClientCompiler(products: directory)
    }()

    /// The package's root: the directory holding `.build`.
    var packageRoot: URL {
        var directory = products
        while directory.path != "/" && directory.lastPathComponent != ".build" {
            directory = directory.deletingLastPathComponent()
        }
        return directory.deletingLastPathComponent()
    }

    /// The `swiftc` next to the `swift` on PATH (the toolchain that built the modules), else the usual places.
    static let swiftc: String = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let candidates =
            path.split(separator: ":").map { "\($0)/swiftc" } + ["/opt/swift/usr/bin/swiftc", "/usr/bin/swiftc"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? "swiftc"
    }()

    /// The C modules the Swift modules import: SwiftPM's generated maps and the dependencies' own.
    var moduleMaps: [String] {
        let manager = FileManager.default
        var maps: [String] = []
        for entry in (try? manager.contentsOfDirectory(atPath: products.path)) ?? [] where entry.hasSuffix(".build") {
            let map = products.appendingPathComponent(entry).appendingPathComponent("module.modulemap").path
            if manager.fileExists(atPath: map) { maps.append(map) }
        }
        let checkouts = packageRoot.appendingPathComponent(".build/checkouts")
        for checkout in (try? manager.contentsOfDirectory(atPath: checkouts.path)) ?? [] {
            let sources = checkouts.appendingPathComponent(checkout).appendingPathComponent("Sources")
            for module in (try? manager.contentsOfDirectory(atPath: sources.path)) ?? [] {
                let map = sources.appendingPathComponent(module).appendingPathComponent("include/module.modulemap").path
                if manager.fileExists(atPath: map) { maps.append(map) }
            }
        }
        return maps.sorted()
    }

    /// Compiles `sources` (file name, text) as one module of a client; `library` is false for a program
    /// with top-level code (as README examples are).
    func compile(_ sources: [(name: String, text: String)], library: Bool = true) throws -> Result {
        let manager = FileManager.default
        let directory = manager.temporaryDirectory.appendingPathComponent("ringport-client-\(UUID().uuidString)")
        try manager.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? manager.removeItem(at: directory) }
        var arguments = ["-emit-sil", "-wmo", "-o", "/dev/null", "-swift-version", "6", "-module-name", "Client"]
        if library { arguments.append("-parse-as-library") }
        arguments += ["-I", products.appendingPathComponent("Modules").path]
        arguments += ["-module-cache-path", products.appendingPathComponent("ModuleCache").path]
        for map in moduleMaps { arguments += ["-Xcc", "-fmodule-map-file=\(map)"] }
        for source in sources {
            let file = directory.appendingPathComponent(source.name)
            try source.text.write(to: file, atomically: true, encoding: .utf8)
            arguments.append(file.path)
        }
        let output = directory.appendingPathComponent("diagnostics.txt")
        _ = manager.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.swiftc)
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(180)
        while process.isRunning && Date() < deadline { usleep(5000) }
        var status: Int32?
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        } else {
            status = process.terminationStatus
        }
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        return Result(status: status, diagnostics: text)
    }

    func compile(_ text: String, library: Bool = true) throws -> Result {
        try compile([(name: "client.swift", text: text)], library: library)
    }
}
