import RingportCore
import RingportSystem

/// A packet the miniport indicated to this protocol (`ProtocolReceivePacket`): its bytes, read in place in
/// the binding's data area. Non-copyable; dropping it returns it (`NdisReturnPackets`), and its buffer is
/// posted again.
public struct ReceivedPacket: ~Copyable {
    var adapter: Adapter?
    let chunk: Int
    let offset: Int
    /// The frame's length in bytes.
    public let length: Int
    /// The layout the driver reported.
    public let layout: NetPacketLayout

    deinit { adapter?.returnReceived(chunk) }

    /// The frame's bytes, in place (valid only inside `body`).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let adapter = adapter!
        let start = chunk * adapter.configuration.chunkSize + offset
        return try adapter.regions.data.withBytes(start..<start + length) { try body(UnsafeRawBufferPointer($0)) }
    }

    /// A copy of the frame's bytes.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }
}

extension Adapter {
    /// Chunks set aside for receive buffers at open: at most half the data area.
    var receiveBufferCount: Int { min(configuration.receiveRingSize - 1, configuration.chunkCount / 2) }

    /// Posts every free receive buffer and every free packet slot (Rx `EndIndex`), and wakes the miniport if
    /// it sleeps. Slots and buffers go separately: a frame the driver drops comes back as a packet with
    /// `Ignore` and no buffer (§1.10), and its slot must be posted again while the buffer stays posted.
    func postReceiveBuffers() {
        guard case .open = state else { return }
        let slots = receive.freePackets
        let buffers = min(receiveFreeChunks.count, receive.freeFragments)
        guard slots > 0 || buffers > 0 else { return }
        for k in 0..<buffers {
            let chunk = receiveFreeChunks.removeLast()
            let fragment = receive.stagedFragment(k)
            fragment.reset()
            fragment.chunk = UInt32(chunk)
            fragment.capacity = UInt32(configuration.chunkSize)
            receiveSlotChunk[Int(fragment.index)] = chunk
        }
        for k in 0..<slots { receive.stagedPacket(k).reset() }
        do {
            try receive.publish(packets: slots, fragments: buffers)
        } catch {
            abandon(reason: "ring: \(error)", reclaimingReturned: false)
            return
        }
        regions.control.miniportWake.wakeIfNeeded()
    }

    /// Indicates each packet the miniport returned since the last call to `handler`, in order; a packet the
    /// driver marked `Ignore` is not indicated. Returns how many were indicated.
    @discardableResult
    public func pollReceives(_ handler: (consuming ReceivedPacket) -> Void) -> Int {
        if case .closed = state { return 0 }
        var indicated = 0
        let before = receive.fragmentCursor
        receiveIndicatedSlots.removeAll(keepingCapacity: true)
        do {
            _ = try receive.reclaimReceived { packet, fragments in
                // One buffer per received packet; the chunk is the one this side posted in that slot.
                let slot = Int(fragments.first)
                let chunk = Int(receiveSlotChunk[slot])
                let fragment = fragments.fragment(0)
                let length = Int(fragment.validLength)
                let offset = Int(fragment.offset)
                guard fragments.count == 1, offset <= configuration.chunkSize,
                    length <= configuration.chunkSize - offset
                else {
                    malformedReceives += 1
                    return
                }
                receiveIndicatedSlots.append(Int32(slot))
                indicated += 1
                handler(
                    ReceivedPacket(adapter: self, chunk: chunk, offset: offset, length: length, layout: packet.layout)
                )
            }
        } catch {
            abandon(reason: "the miniport broke the receive ring contract: \(error)", reclaimingReturned: false)
            return indicated
        }
        // Every returned slot's buffer is now held by the protocol (indicated) or free (ignored, malformed,
        // cancelled).
        var slot = before
        while slot != receive.fragmentCursor {
            if !receiveIndicatedSlots.contains(Int32(slot)) { receiveFreeChunks.append(receiveSlotChunk[Int(slot)]) }
            slot = receive.fragmentRing.increment(slot)
        }
        postReceiveBuffers()
        if indicated == 0 { checkLiveness() }
        return indicated
    }

    /// Waits up to `timeoutSeconds` for received packets (spinning briefly, then sleeping), and indicates
    /// them to `handler`. Returns how many; 0 on timeout.
    @discardableResult
    public func waitForReceives(timeoutSeconds: Double, _ handler: (consuming ReceivedPacket) -> Void) -> Int {
        wait(
            timeoutSeconds: timeoutSeconds,
            ring: regions.receivePacketRing,
            cursor: { receive.packetCursor },
            nothingToWaitFor: {
                if case .closed = state { return true }
                return false
            },
            poll: { pollReceives(handler) }
        )
    }

    /// `NdisReturnPackets`: the protocol is done with a received packet; its buffer is posted again.
    func returnReceived(_ chunk: Int) {
        receiveFreeChunks.append(Int32(chunk))
        postReceiveBuffers()
    }
}
