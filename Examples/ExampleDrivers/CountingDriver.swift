public import RingportMiniport
import Synchronization

/// Ring style (NetAdapterCx): completes every posted packet with `SUCCESS` in the same turn and counts
/// packets and bytes per binding. A packet the OS marked `Ignore` completes with `INVALID_PACKET`.
public final class CountingDriver: RingDriver, Sendable {
    public struct Count: Sendable, Equatable {
        public var packets = 0
        public var bytes = 0
        public init(packets: Int = 0, bytes: Int = 0) {
            self.packets = packets
            self.bytes = bytes
        }
    }

    public let name = "counting"
    // Read by other threads (a test, a statistics call) while the data thread writes it.
    let counts = Mutex<[UInt64: Count]>([:])

    public init() {}

    /// What the driver has completed for `binding` so far.
    public func count(of binding: UInt64) -> Count { counts.withLock { $0[binding] ?? Count() } }

    public func bindingClosing(_ binding: UInt64, context: MiniportContext) {
        _ = counts.withLock { $0.removeValue(forKey: binding) }
    }

    // EvtPacketQueueAdvance: post (take what the OS posted), then drain (return it, in ring order).
    public func advance(_ queue: TransmitQueue, context: MiniportContext) throws(NetRingViolation) {
        let rings = queue.rings
        var post = rings.postPackets()
        guard post.hasAny else { return }
        var fragmentEnd = rings.fragmentRing.loadNextIndex()
        var packets = 0
        var bytes = 0
        while post.hasAny {
            let packet = post.packet
            var status = NDISStatus.success
            if packet.ignore {
                status = .invalidPacket  // the OS could not translate it: no fragments to read
            } else {
                var fragments = post.fragments()
                // The element is loaded once, by the iterator; where its fragments end comes from that one load.
                let fragmentsEnd = fragments.hasAny ? fragments.end : nil
                while fragments.hasAny {
                    // A fragment whose fields do not fit the data area is the protocol's error, not a crash.
                    guard let length = queue.withBytes(of: fragments.fragment, { $0.count }) else {
                        status = .invalidPacket
                        break
                    }
                    bytes += length
                    fragments.advance()
                }
                if let fragmentsEnd { fragmentEnd = fragmentsEnd }
            }
            queue.setStatus(status, of: packet)
            packets += 1
            post.advance()
        }
        try post.set()  // packets: NextIndex
        try rings.setFragmentNextIndex(to: fragmentEnd)
        try rings.setFragmentBeginIndex(to: fragmentEnd)  // fragments go back before their packets
        var drain = rings.drainPackets()
        drain.advanceToTheEnd()
        try drain.set()  // packets: BeginIndex, the protocol's send-complete
        context.recordSent(binding: queue.binding, packets: packets, bytes: bytes)
        counts.withLock {
            $0[queue.binding, default: Count()].packets += packets
            $0[queue.binding, default: Count()].bytes += bytes
        }
    }
}
