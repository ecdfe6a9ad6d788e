import RingportCore

/// The bare-ring benchmark: each packet is one packet element and one fragment element (32 bytes of
/// descriptors). The OS side writes both and publishes once per batch; the driver side reads both, checks
/// the sequence, and returns everything it read (fragments, then packets). No payload is touched.
package enum RingBench {
    /// The OS side: sends `packets` packets in batches of `batch`, and reclaims them checking their order.
    package static func runOS(_ rings: TransferRings, packets: Int, batch: Int, timeoutSeconds: Double = 60) throws {
        var queue = OSRingQueue(packetRing: rings.packetRing, fragmentRing: rings.fragmentRing, checked: false)
        var backoff = Backoff(timeoutSeconds: timeoutSeconds, spins: Int.max)
        let total = UInt32(truncatingIfNeeded: packets)
        var sent: UInt32 = 0
        var completed: UInt32 = 0
        var misordered = 0
        while completed != total {
            let returned = try queue.reclaimPackets { packet in
                if packet.descriptor != completed { misordered += 1 }
                completed &+= 1
            }
            _ = try queue.reclaimFragments()
            let n = min(batch, Int(total &- sent), queue.freePackets, queue.freeFragments)
            if n > 0 && (n == batch || sent &+ UInt32(n) == total) {
                for k in 0..<n {
                    let fragment = queue.stagedFragment(k)
                    fragment.validLength = 64
                    fragment.capacity = 128
                    fragment.chunk = fragment.index
                    fragment.offset = 0
                    let packet = queue.stagedPacket(k)
                    packet.fragmentIndex = fragment.index
                    packet.fragmentCount = 1
                    packet.descriptor = sent &+ UInt32(k)
                }
                try queue.publish(packets: n, fragments: n)
                sent &+= UInt32(n)
                backoff.progressed()
            } else if returned > 0 {
                backoff.progressed()
            } else if !backoff.pause() {
                throw TransferFailure("bench OS: no progress (sent \(sent), completed \(completed))")
            }
        }
        if misordered > 0 { throw TransferFailure("bench OS: \(misordered) packets came back out of order") }
    }

    /// The driver side: receives `packets` packets, checking their sequence, and returns them.
    package static func runDriver(_ rings: TransferRings, packets: Int, timeoutSeconds: Double = 60) throws {
        let collection = NetRingCollection(
            packetRing: rings.packetRing, fragmentRing: rings.fragmentRing, checked: false)
        var backoff = Backoff(timeoutSeconds: timeoutSeconds, spins: Int.max)
        let total = UInt32(truncatingIfNeeded: packets)
        var received: UInt32 = 0
        var errors = 0
        var fragmentEnd = rings.fragmentRing.loadNextIndex()
        while received != total {
            var post = collection.postPackets()
            guard post.hasAny else {
                if !backoff.pause() { throw TransferFailure("bench driver: no packet after \(received)") }
                continue
            }
            backoff.progressed()
            while post.hasAny {
                let packet = post.packet
                if packet.descriptor != received { errors += 1 }
                var fragments = post.fragments()
                while fragments.hasAny {
                    if fragments.fragment.validLength != 64 { errors += 1 }
                    fragments.advance()
                }
                fragmentEnd = fragments.index
                received &+= 1
                post.advance()
            }
            try post.set()
            try collection.setFragmentNextIndex(to: fragmentEnd)
            var drain = collection.drainPackets()
            drain.advanceToTheEnd()
            try collection.setFragmentBeginIndex(to: fragmentEnd)
            try drain.set()
        }
        if errors > 0 { throw TransferFailure("bench driver: \(errors) packets out of sequence or malformed") }
    }
}
