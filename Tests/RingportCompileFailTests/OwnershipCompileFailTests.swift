import Foundation
import Testing

/// A client program that breaks one ownership rule on the line marked `// ✗`, and the error the compiler
/// must give for it. Without that line the program must compile with no error and no warning (the
/// control), so a snippet cannot pass on an unrelated error.
struct Snippet: Sendable, CustomTestStringConvertible {
    let rule: String
    let body: String
    let diagnostic: String
    var declarations = ""

    static let marker = "// ✗"

    var testDescription: String { rule }

    func source(withOffendingLine: Bool) -> String {
        let lines = body.split(separator: "\n", omittingEmptySubsequences: false).filter {
            withOffendingLine || !$0.contains(Self.marker)
        }
        return """
            import Ringport
            import RingportCore

            \(declarations)
            func snippet(adapter: Adapter) throws {
            \(lines.joined(separator: "\n"))
            }

            """
    }
}

let usedAfterConsume = "used after consume"
let consumedTwice = "consumed more than once"

/// The ownership rules README promises, each broken once.
let snippets: [Snippet] = [
    Snippet(
        rule: "a packet cannot be used after it is sent",
        body: """
            let packet = try adapter.allocatePacket()
            adapter.send(packet)
            _ = packet.totalLength  // ✗
            """,
        diagnostic: "'packet' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "a packet array cannot be used after it is sent",
        body: """
            var packets = PacketArray()
            packets.append(try adapter.allocatePacket())
            adapter.send(packets)
            _ = packets.count  // ✗
            """,
        diagnostic: "'packets' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "a packet cannot be used after its array is sent",
        body: """
            var packets = PacketArray()
            let packet = try adapter.allocatePacket()
            packets.append(packet)
            adapter.send(packets)
            _ = packet.flags  // ✗
            """,
        diagnostic: "'packet' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "a buffer cannot be used after it is chained to a packet",
        body: """
            var packet = try adapter.allocatePacket()
            var buffer = try adapter.allocateBuffer(length: 0)
            buffer.write([1, 2, 3])
            packet.chainAtBack(buffer)
            buffer.write([4])  // ✗
            adapter.send(packet)
            """,
        diagnostic: "'buffer' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "a buffer's bytes cannot be reached through the packet after it is sent",
        body: """
            var packet = try adapter.allocatePacket()
            var buffer = try adapter.allocateBuffer(length: 0)
            buffer.write([1, 2, 3])
            packet.chainAtFront(buffer)
            adapter.send(packet)
            packet.withUnsafeMutableBytes(ofBufferAt: 0) { $0[0] = 9 }  // ✗
            """,
        diagnostic: "'packet' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "a buffer cannot be unchained from a packet after it is sent",
        body: """
            var packet = try adapter.allocatePacket()
            let buffer = try adapter.allocateBuffer(length: 8)
            packet.chainAtBack(buffer)
            adapter.send(packet)
            _ = packet.unchainAtFront()  // ✗
            """,
        diagnostic: "'packet' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "the OOB media-specific information cannot be set after the packet is sent",
        body: """
            let packet = try adapter.allocatePacket()
            packet.mediaSpecificInformation = .ieee8023Priority(5)
            adapter.send(packet)
            packet.mediaSpecificInformation = .ieee8023Priority(7)  // ✗
            """,
        diagnostic: "'packet' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "the OOB time-to-send cannot be set after the packet is sent",
        body: """
            let packet = try adapter.allocatePacket()
            adapter.send(packet)
            packet.timeToSend = 1  // ✗
            """,
        diagnostic: "'packet' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "the ProtocolReserved bytes cannot be written after the packet is sent",
        body: """
            var packets = PacketArray()
            let packet = try adapter.allocatePacket()
            packets.append(packet)
            adapter.send(&packets)
            packet.withProtocolReserved { $0[0] = 1 }  // ✗
            """,
        diagnostic: "'packet' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "a packet cannot be sent twice",
        body: """
            let packet = try adapter.allocatePacket()
            adapter.send(packet)
            adapter.send(packet)  // ✗
            """,
        diagnostic: "'packet' \(consumedTwice)"
    ),
    Snippet(
        rule: "a packet appended to an array cannot also be sent alone",
        body: """
            var packets = PacketArray()
            let packet = try adapter.allocatePacket()
            packets.append(packet)
            adapter.send(packet)  // ✗
            adapter.send(packets)
            """,
        diagnostic: "'packet' \(consumedTwice)"
    ),
    Snippet(
        rule: "a packet cannot be appended to an array twice",
        body: """
            var packets = PacketArray()
            let packet = try adapter.allocatePacket()
            packets.append(packet)
            packets.append(packet)  // ✗
            adapter.send(packets)
            """,
        diagnostic: "'packet' \(consumedTwice)"
    ),
    Snippet(
        rule: "a packet array cannot be sent twice",
        body: """
            let packets = PacketArray()
            adapter.send(packets)
            adapter.send(packets)  // ✗
            """,
        diagnostic: "'packets' \(consumedTwice)"
    ),
    Snippet(
        rule: "a packet cannot be copied: after let b = a, a is gone",
        body: """
            let packet = try adapter.allocatePacket()
            let copy = packet
            _ = packet.totalLength  // ✗
            adapter.send(copy)
            """,
        diagnostic: "'packet' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "a packet cannot be passed where a copyable value is expected",
        body: """
            let packet = try adapter.allocatePacket()
            _ = twice(packet)  // ✗
            adapter.send(packet)
            """,
        diagnostic: "requires that 'Packet' conform to 'Copyable'",
        declarations: "func twice<T>(_ value: T) -> [T] { [value, value] }\n"
    ),
    Snippet(
        rule: "a buffer cannot be copied",
        body: """
            var packet = try adapter.allocatePacket()
            let buffer = try adapter.allocateBuffer(length: 8)
            let copy = buffer
            _ = buffer.length  // ✗
            packet.chainAtBack(copy)
            adapter.send(packet)
            """,
        diagnostic: "'buffer' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "a completed packet cannot be used after it is sent again",
        body: """
            _ = adapter.pollCompletions { packet, _ in
                adapter.send(packet)
                _ = packet.descriptorIndex  // ✗
            }
            """,
        diagnostic: "'packet' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "a received packet cannot be used after it is returned",
        body: """
            adapter.pollReceives { frame in
                _ = consume frame  // NdisReturnPackets
                _ = frame.length  // ✗
            }
            """,
        diagnostic: "'frame' \(usedAfterConsume)"
    ),
    Snippet(
        rule: "a received packet cannot be copied",
        body: """
            adapter.pollReceives { frame in
                let copy = frame
                _ = frame.bytes  // ✗
                _ = copy.length
            }
            """,
        diagnostic: "'frame' \(usedAfterConsume)"
    ),
]

@Suite struct OwnershipCompileFailTests {
    @Test(arguments: snippets)
    func breakingTheRuleDoesNotCompile(_ snippet: Snippet) throws {
        let compiler = try #require(ClientCompiler.debug, "no built modules next to the test bundle")
        let broken = try compiler.compile(snippet.source(withOffendingLine: true))
        #expect(broken.status != nil && !broken.succeeded, "compiled: \(snippet.rule)")
        #expect(
            broken.errors.contains { $0.contains(snippet.diagnostic) },
            "expected \"\(snippet.diagnostic)\", got:\n\(broken.diagnostics)")
        let control = try compiler.compile(snippet.source(withOffendingLine: false))
        #expect(control.succeeded, "the control does not compile:\n\(control.diagnostics)")
        #expect(control.warnings.isEmpty, "the control has warnings:\n\(control.diagnostics)")
    }

    /// The example drivers build as a client outside the package would build them: public API only (no
    /// `@testable`, no `package` access).
    @Test func theExampleDriversCompileAgainstThePublicAPIOnly() throws {
        let compiler = try #require(ClientCompiler.debug)
        let directory = compiler.packageRoot.appendingPathComponent("Examples/ExampleDrivers")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter {
            $0.hasSuffix(".swift")
        }
        #expect(names.count >= 3)
        let sources = try names.sorted().map {
            (name: $0, text: try String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8))
        }
        let result = try compiler.compile(sources)
        #expect(result.succeeded && result.warnings.isEmpty, "\(result.diagnostics)")
    }
}

/// The `@_spi(Testing)` door (`Packet.forgedCopy`, a second handle to one descriptor) exists for the
/// package's own tests, in debug builds only.
@Suite struct ForgedHandleDoorTests {
    static let client = """
        @_spi(Testing) import Ringport

        func forge(_ packet: borrowing Packet) -> Packet {
            packet.forgedCopy()  // ✗
        }

        """
    static let control = """
        @_spi(Testing) import Ringport

        func touch(_ packet: borrowing Packet) -> Int {
            packet.descriptorIndex
        }

        """

    @Test(
        .enabled(if: ClientCompiler.release != nil, "needs RINGPORT_PRODUCTS=<release bin path>, as tools/test.sh sets")
    )
    func aReleaseBuildsClientCannotForgeAPacketHandle() throws {
        let release = try #require(ClientCompiler.release)
        let forged = try release.compile(Self.client)
        #expect(!forged.succeeded)
        #expect(
            forged.errors.contains { $0.contains("value of type 'Packet' has no member 'forgedCopy'") },
            "\(forged.diagnostics)")
        let control = try release.compile(Self.control)
        #expect(control.succeeded && control.warnings.isEmpty, "\(control.diagnostics)")
    }

    /// The same client against the debug build compiles: the snippet is right, and the tests keep their door.
    @Test func aDebugBuildsTestsCanStillForgeOne() throws {
        let debug = try #require(ClientCompiler.debug)
        let forged = try debug.compile(Self.client)
        #expect(forged.succeeded && forged.warnings.isEmpty, "\(forged.diagnostics)")
    }
}

/// The ```swift blocks of the README section that starts at `heading` (up to the next heading of its level),
/// or of the whole README when `heading` is nil.
func readmeBlocks(under heading: String?) throws -> [String] {
    let compiler = try #require(ClientCompiler.debug)
    let readme = try String(
        contentsOf: compiler.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
    let level = (heading ?? "").prefix { $0 == "#" } + " "
    var blocks: [String] = []
    var inSection = heading == nil
    var block: [Substring]?
    for line in readme.split(separator: "\n", omittingEmptySubsequences: false) {
        if block == nil && line.hasPrefix("#"), let heading {
            if line == heading {
                inSection = true
            } else if inSection && line.hasPrefix(level) {
                break
            }
            continue
        }
        guard inSection else { continue }
        if block == nil && line == "```swift" {
            block = []
        } else if block != nil && line == "```" {
            blocks.append(block!.joined(separator: "\n") + "\n")
            block = nil
        } else if block != nil {
            block!.append(line)
        }
    }
    return blocks
}
