import Glibc
import Testing

@testable import RingportCore

/// Two rings in private memory, with both sides in this process: the OS queue and the driver's collection.
final class RingFixture {
    let memory: UnsafeMutableRawBufferPointer
    let packetRing: NetRing
    let fragmentRing: NetRing
    let dataRegion: UnsafeMutableRawBufferPointer
    let data: DataArea

    init(packets: Int = 8, fragments: Int = 16, direction: NetRingFlags = .transmit, chunkSize: Int = 64) throws {
        let packetBytes = NetRing.regionSize(count: packets, stride: NetPacket.size)
        let fragmentBytes = NetRing.regionSize(count: fragments, stride: NetFragment.size)
        let fragmentOffset = (packetBytes + 127) & ~127
        let dataOffset = (fragmentOffset + fragmentBytes + 127) & ~127
        memory = .allocate(byteCount: dataOffset + fragments * chunkSize, alignment: 128)
        memory.initializeMemory(as: UInt8.self, repeating: 0xEE)
        packetRing = try NetRing.initialize(
            at: UnsafeMutableRawBufferPointer(rebasing: memory[0..<packetBytes]),
            count: packets,
            stride: NetPacket.size,
            flags: direction.union(.packet)
        )
        fragmentRing = try NetRing.initialize(
            at: UnsafeMutableRawBufferPointer(rebasing: memory[fragmentOffset..<fragmentOffset + fragmentBytes]),
            count: fragments,
            stride: NetFragment.size,
            flags: direction.union(.fragment)
        )
        dataRegion = UnsafeMutableRawBufferPointer(rebasing: memory[dataOffset...])
        data = DataArea(dataRegion, chunkSize: chunkSize)
    }

    deinit { memory.deallocate() }

    func os(checked: Bool = true) -> OSRingQueue {
        OSRingQueue(packetRing: packetRing, fragmentRing: fragmentRing, checked: checked)
    }

    func driver(checked: Bool = true) -> NetRingCollection {
        NetRingCollection(packetRing: packetRing, fragmentRing: fragmentRing, checked: checked)
    }

    /// Stages and publishes `count` transmit packets of `fragmentsEach` fragments, descriptors from `first`.
    func send(_ os: inout OSRingQueue, count: Int, fragmentsEach: Int = 1, first: UInt32 = 0) throws {
        var f = 0
        for k in 0..<count {
            let packet = os.stagedPacket(k)
            packet.reset()
            packet.fragmentIndex = os.stagedFragmentIndex(f)
            packet.fragmentCount = UInt16(fragmentsEach)
            packet.descriptor = first + UInt32(k)
            for _ in 0..<fragmentsEach {
                let fragment = os.stagedFragment(f)
                fragment.reset()
                fragment.chunk = fragment.index
                fragment.capacity = UInt32(data.chunkSize)
                fragment.validLength = 10
                f += 1
            }
        }
        try os.publish(packets: count, fragments: f)
    }

    /// Stages and publishes `count` empty receive buffers and as many packet slots.
    func postReceiveBuffers(_ os: inout OSRingQueue, count: Int) throws {
        for k in 0..<count {
            os.stagedPacket(k).reset()
            let fragment = os.stagedFragment(k)
            fragment.reset()
            fragment.chunk = fragment.index
            fragment.capacity = UInt32(data.chunkSize)
        }
        try os.publish(packets: count, fragments: count)
    }
}

/// The rule a throwing call broke, or nil if it did not throw.
func brokenRule(_ body: () throws -> Void) -> NetRingRule? {
    do {
        try body()
        return nil
    } catch let violation as NetRingViolation {
        return violation.rule
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}
