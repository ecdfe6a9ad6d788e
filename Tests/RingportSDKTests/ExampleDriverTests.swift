import ExampleDrivers
import Foundation
import Logging
import Ringport
import RingportCore
import RingportMiniport
import RingportSystem
import Testing

/// A driver from outside the package's built-ins, served by the embedding API: `Miniport(options:driver:logger:)`
/// and `run()` on a thread of its own, `requestStop()` to end it.
final class EmbeddedMiniport: @unchecked Sendable {
    let miniport: Miniport
    let thread: Thread
    let directory: RuntimeDirectory
    static let adapter = "sdk0"

    init(driver: any MiniportDriver) throws {
        directory = RuntimeDirectory("/tmp/ringport-sdk-\(UInt32.random(in: 0...UInt32.max))")
        var logger = Logger(label: "sdk-miniport")
        logger.logLevel = .warning
        let created = try Miniport(
            options: MiniportOptions(adapter: Self.adapter, directory: directory, checked: true),
            driver: driver,
            logger: logger
        )
        miniport = created
        thread = Thread { created.run() }
        thread.start()
    }

    /// Small pools and rings, so a test can run the receiver out of buffers.
    func open() throws -> Adapter {
        try Adapter.open(
            Self.adapter,
            configuration: BindingConfiguration(
                packetCount: 64, chunkCount: 128, transmitRingSize: 64, receiveRingSize: 16),
            directory: directory
        )
    }

    /// Stops the miniport; returns whether `run()` returned in time.
    @discardableResult
    func stop() -> Bool {
        miniport.requestStop()
        let deadline = Date().addingTimeInterval(10)
        while !thread.isFinished && Date() < deadline { usleep(1000) }
        try? FileManager.default.removeItem(atPath: directory.path)
        return thread.isFinished
    }
}

/// A packet of one buffer holding `bytes`, with an 802.1p priority.
func makePacket(_ adapter: Adapter, _ bytes: [UInt8], priority: UInt8 = 0) throws -> Packet {
    var packet = try adapter.allocatePacket()
    var buffer = try adapter.allocateBuffer(length: 0)
    buffer.write(bytes)
    packet.chainAtBack(buffer)
    packet.mediaSpecificInformation = .ieee8023Priority(priority)
    return packet
}

/// What a protocol saw: its send-completions in order, and the frames it received.
struct Traffic {
    var completions: [(descriptor: Int, status: NDISStatus)] = []
    var replies: [[UInt8]] = []
}

/// Polls completions (and receives, if `receiving`) until `done` or `seconds` pass.
func pump(
    _ adapter: Adapter, receiving: Bool, seconds: Double = 10, into traffic: inout Traffic,
    until done: (Traffic) -> Bool
) {
    let deadline = Date().addingTimeInterval(seconds)
    while !done(traffic) && Date() < deadline {
        adapter.waitForCompletions(timeoutSeconds: 0.01) { packet, status in
            traffic.completions.append((packet.descriptorIndex, status))
        }
        if receiving { adapter.pollReceives { frame in traffic.replies.append(frame.bytes) } }
    }
}

@Suite struct ExampleDriverTests {
    @Test func aRingStyleDriverOutsideThePackageCompletesEveryPacketInRingOrder() throws {
        let driver = CountingDriver()
        let host = try EmbeddedMiniport(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        var sentOrder: [Int] = []
        var bytes = 0
        var traffic = Traffic()
        for round in 0..<20 {  // 20 arrays of 5: more than the 64-element ring holds, so it wraps
            var batch = PacketArray()
            for i in 0..<5 {
                var packet = try adapter.allocatePacket()
                for piece in 0...(i % 3) {  // 1 to 3 buffers
                    var buffer = try adapter.allocateBuffer(length: 0)
                    buffer.write(Array(repeating: UInt8(piece), count: 10 + round + i))
                    bytes += 10 + round + i
                    packet.chainAtBack(buffer)
                }
                sentOrder.append(packet.descriptorIndex)
                batch.append(packet)
            }
            adapter.send(batch)
            pump(adapter, receiving: false, into: &traffic) {
                $0.completions.count == sentOrder.count
            }
        }
        // A packet with no buffer cannot be translated: the OS marks it Ignore and the driver fails it.
        let empty = try adapter.allocatePacket()
        sentOrder.append(empty.descriptorIndex)
        adapter.send(empty)
        pump(adapter, receiving: false, into: &traffic) {
            $0.completions.count == sentOrder.count
        }
        #expect(traffic.completions.map(\.descriptor) == sentOrder)
        #expect(traffic.completions.dropLast().allSatisfy { $0.status == .success })
        #expect(traffic.completions.last?.status == .invalidPacket)
        #expect(driver.count(of: adapter.bindingID) == CountingDriver.Count(packets: 101, bytes: bytes))
        try adapter.close()
        #expect(host.stop())
    }

    @Test(arguments: [true, false])
    func anArrayDriverOutsideThePackageEchoesEveryFrameInOrderWhenTheReceiverRunsOutOfBuffers(serialized: Bool)
        throws
    {
        let driver = ReverseEchoDriver(serialized: serialized)
        let host = try EmbeddedMiniport(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        let frames = (0..<60).map { Array("frame \($0)".utf8) }
        var batch = PacketArray()
        for frame in frames { batch.append(try makePacket(adapter, frame)) }
        adapter.send(batch)
        var traffic = Traffic()
        // Not receiving: the 15 posted receive buffers fill, then the driver must hold the rest back
        // (serialized: RESOURCES and a requeue; deserialized: it keeps them pending).
        pump(adapter, receiving: false, into: &traffic) { !$0.completions.isEmpty }
        pump(adapter, receiving: false, seconds: 0.5, into: &traffic) { _ in false }  // let it settle
        let completedWhileFull = traffic.completions.count
        #expect((1...15).contains(completedWhileFull), "a frame completes only once its reply is delivered")
        pump(adapter, receiving: true, into: &traffic) {
            $0.completions.count == frames.count && $0.replies.count == frames.count
        }
        #expect(traffic.replies == frames.map { Array($0.reversed()) })
        #expect(traffic.completions.count == frames.count && traffic.completions.allSatisfy { $0.status == .success })
        try adapter.close()
        #expect(host.stop())
    }

    @Test func aPerPacketDriverOutsideThePackageSeesEveryPacketOnceInOrderAcrossRequeues() throws {
        let driver = ThrottledDriver(credits: 3, maxFrame: 100)
        let host = try EmbeddedMiniport(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        var expected: [ThrottledDriver.Taken] = []
        var sentOrder: [Int] = []
        var batch = PacketArray()
        for i in 0..<40 {
            let payload = Array(repeating: UInt8(i), count: i % 7 == 0 ? 200 : 8)  // every 7th too long
            let packet = try makePacket(adapter, payload, priority: UInt8(i % 8))
            sentOrder.append(packet.descriptorIndex)
            expected.append(ThrottledDriver.Taken(payload: payload, priority: UInt8(i % 8)))
            batch.append(packet)
        }
        adapter.send(batch)
        var traffic = Traffic()
        pump(adapter, receiving: false, into: &traffic) {
            $0.completions.count == sentOrder.count
        }
        #expect(traffic.completions.map(\.descriptor) == sentOrder)
        #expect(traffic.completions.map(\.status) == expected.map { $0.payload.count > 100 ? .failure : .success })
        #expect(driver.taken == expected)
        #expect(driver.refusals > 0)
        try adapter.close()
        #expect(host.stop())
    }
}
