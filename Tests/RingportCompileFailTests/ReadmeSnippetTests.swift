import Foundation
import TestSupport
import Testing

/// README's code, compiled as a client outside the package would compile it: no `@testable`, no
/// `package` access, nothing added. A block that stops compiling fails here, so README cannot rot.
@Suite struct ReadmeSnippetTests {
    /// Every ```swift block of README.md, alone, is a whole program (its own imports, its own adapter):
    /// a reader can paste any one of them into `main.swift`.
    @Test func everySwiftBlockOfTheReadmeCompilesAloneAsAClientProgram() throws {
        let compiler = try #require(ClientCompiler.debug)
        let blocks = try readmeBlocks(under: nil)
        #expect(blocks.count >= 8, "README has lost its examples")
        for (index, block) in blocks.enumerated() {
            let result = try compiler.compile([(name: "main.swift", text: block)], library: false)
            #expect(
                result.succeeded && result.warnings.isEmpty,
                "README's swift block \(index + 1) (\(block.prefix(60))...):\n\(result.diagnostics)")
        }
    }

    /// The Swift lines `ringportd` prints at start-up ("connect from Swift") compile as a client program,
    /// imports included.
    @Test func theBannersConnectLinesCompileAsAClientProgram() throws {
        let compiler = try #require(ClientCompiler.debug)
        let miniport = try MiniportProcess()
        let banner = miniport.process.standardOutput.split(separator: "\n").map(String.init)
        let start = try #require(banner.firstIndex { $0.contains("connect from Swift:") }, "\(banner)")
        let end = try #require(banner[start...].firstIndex { $0.contains("try it:") }, "\(banner)")
        let lines = banner[start..<end].map {
            $0.replacingOccurrences(of: "connect from Swift:", with: "").trimmingCharacters(in: .whitespaces)
        }
        #expect(lines.count >= 2 && lines[0] == "import Ringport", "\(lines)")
        let program = lines.joined(separator: "\n") + "\ntry adapter.close()\n"
        let result = try compiler.compile([(name: "main.swift", text: program)], library: false)
        #expect(result.succeeded && result.warnings.isEmpty, "\(program)\n\(result.diagnostics)")
    }

    /// A client of the libraries sees their API and none of the plumbing under it, even when it names the
    /// lower modules itself: those types are `package`, not `public`.
    @Test func aClientSeesNoPlumbing() throws {
        let compiler = try #require(ClientCompiler.debug)
        let plumbing = [
            "OSRingQueue", "SharedSegment", "ControlSocket", "Futex", "ControlMessage", "ControlBlock",
            "DescriptorTable", "BufferTable", "SegmentLayout", "HangupWatcher", "AdapterLock", "MultiWait",
            "LocalStack", "SharedWord", "UncountedReference",
        ]
        for name in plumbing {
            let source = """
                import Ringport
                import RingportCore
                import RingportMiniport
                import RingportSystem

                let hidden = \(name).self

                """
            let result = try compiler.compile([(name: "main.swift", text: source)], library: false)
            #expect(
                result.errors.contains { $0.contains("cannot find '\(name)' in scope") },
                "\(name) is visible to clients:\n\(result.diagnostics)")
        }
        // A protocol's `import Ringport` brings neither the driver SDK's ring types nor the C shim.
        for name in ["NetRingCollection", "NetRingIterator", "NetPacket", "NetRingVerifier", "rp_futex_wake"] {
            let source = "import Ringport\n\nlet hidden = \(name)\(name.hasPrefix("rp_") ? "" : ".self")\n"
            let result = try compiler.compile([(name: "main.swift", text: source)], library: false)
            #expect(
                result.errors.contains { $0.contains("cannot find '\(name)' in scope") },
                "\(name) comes with import Ringport:\n\(result.diagnostics)")
        }
        // The control: what a client does need comes with `import Ringport` alone.
        let control = """
            import Ringport

            func use<T: ~Copyable>(_ type: T.Type) { print(type) }
            use(Adapter.self)
            use(PacketArray.self)
            use(NDISStatus.self)
            use(WaitPolicy.self)
            use(BindingConfiguration.self)
            use(RuntimeDirectory.self)
            use(MediaSpecificInformation.self)
            use(AdapterError.self)

            """
        let result = try compiler.compile([(name: "main.swift", text: control)], library: false)
        #expect(result.succeeded && result.warnings.isEmpty, "\(result.diagnostics)")
    }
}
