import RingportCore
import RingportSystem

/// A packet the miniport indicated to this protocol (`ProtocolReceivePacket`): its bytes, read in place in
/// the binding's data area. Non-copyable; dropping it returns it (`NdisReturnPackets`), and its buffer is
/// posted again.
public struct ReceivedPacket: ~Copyable {
    let binding: BindingReference
    let chunk: Int
    let offset: Int
    /// The frame's length in bytes.
    public let length: Int
    /// The layout the driver reported.
    public let layout: NetPacketLayout

    /// A new handle (counted by its binding, like a `Packet`).
    init(adapter: Adapter, chunk: Int, offset: Int, length: Int, layout: NetPacketLayout) {
        adapter.handleCreated()
        binding = BindingReference(adapter)
        self.chunk = chunk
        self.offset = offset
        self.length = length
        self.layout = layout
    }

    deinit {
        binding.dropHandle { $0.returnReceived(chunk) }
    }

    /// The frame's bytes, in place (valid only inside `body`).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try binding { adapter in
            let start = chunk * adapter.configuration.chunkSize + offset
            return try adapter.regions.data.withBytes(start..<start + length) { try body(UnsafeRawBufferPointer($0)) }
        }
    }

    /// A copy of the frame's bytes.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }
}

extension Adapter {
    /// Chunks set aside for receive buffers at open: at most half the data area.
    var receiveBufferCount: Int { min(configuration.receiveRingSize - 1, configuration.chunkCount / 2) }

    /// Posts every free receive buffer and every free packet slot (Rx `EndIndex`), and wakes the miniport if
    /// it sleeps. Slots and buffers go separately: a frame the driver drops comes back as a packet with
    /// `Ignore` and no buffer (Docs/Contract.md §1.10), and its slot must be posted again while the buffer
    /// stays posted.
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
    /// driver marked `Ignore` is not indicated. Returns how many were indicated. The packets `handler` drops
    /// are posted again together, when the batch ends.
    @discardableResult
    public func pollReceives(_ handler: (consuming ReceivedPacket) -> Void) -> Int {
        pollReceiveBatch { batch in
            for i in 0..<batch.count { if let packet = batch.take(at: i) { handler(packet) } }
        }
    }

    /// Hands every packet the miniport returned since the last call to `handler` as one batch, in order
    /// (none if nothing came: `handler` is then not called). Returns how many were indicated. Each packet is
    /// read in place; those `handler` does not `take` are returned when it ends, with one post of the ring.
    @discardableResult
    public func pollReceiveBatch(_ handler: (inout ReceivedBatch) -> Void) -> Int {
        if case .closed = state { return 0 }
        precondition(!receiveBatchOpen, "a receive poll from inside a receive batch")
        let before = receive.fragmentCursor
        receiveIndicatedSlots.removeAll(keepingCapacity: true)
        receiveBatch.removeAll(keepingCapacity: true)
        do {
            _ = try receive.reclaimReceived { packet, fragments in
                // One buffer per received packet; the chunk is the one this side posted in that slot.
                let slot = Int(fragments.first)
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
                receiveBatch.append(
                    ReceivedEntry(
                        chunk: receiveSlotChunk[slot], offset: Int32(offset), length: Int32(length),
                        layout: packet.layout))
            }
        } catch {
            abandon(reason: "the miniport broke the receive ring contract: \(error)", reclaimingReturned: false)
            return 0
        }
        // Every returned slot's buffer is now indicated or free (ignored, malformed, cancelled). The indicated
        // slots are in ring order, a subsequence of the returned ones.
        var slot = before
        var next = 0
        while slot != receive.fragmentCursor {
            if next < receiveIndicatedSlots.count && receiveIndicatedSlots[next] == Int32(slot) {
                next += 1
            } else {
                receiveFreeChunks.append(receiveSlotChunk[Int(slot)])
            }
            slot = receive.fragmentRing.increment(slot)
        }
        let indicated = receiveBatch.count
        if indicated > 0 {
            receiveBatchOpen = true
            receiveBatchSerial &+= 1
            var batch = ReceivedBatch(adapter: self, serial: receiveBatchSerial, count: indicated)
            handler(&batch)
            receiveBatchOpen = false
            for entry in receiveBatch where !entry.taken { receiveFreeChunks.append(entry.chunk) }
        }
        postReceiveBuffers()
        if indicated == 0 { checkLiveness() }
        return indicated
    }

    /// Waits up to `timeoutSeconds` for received packets (as `waitPolicy` says), and indicates them to
    /// `handler`. Returns how many; 0 on timeout.
    @discardableResult
    public func waitForReceives(timeoutSeconds: Double, _ handler: (consuming ReceivedPacket) -> Void) -> Int {
        waitForReceiveBatch(timeoutSeconds: timeoutSeconds) { batch in
            for i in 0..<batch.count { if let packet = batch.take(at: i) { handler(packet) } }
        }
    }

    /// Waits up to `timeoutSeconds` for received packets (as `waitPolicy` says), and hands them to `handler`
    /// as one batch. Returns how many; 0 on timeout.
    @discardableResult
    public func waitForReceiveBatch(timeoutSeconds: Double, _ handler: (inout ReceivedBatch) -> Void) -> Int {
        wait(
            timeoutSeconds: timeoutSeconds,
            ring: regions.receivePacketRing,
            cursor: { receive.packetCursor },
            nothingToWaitFor: {
                if case .closed = state { return true }
                return false
            },
            poll: { pollReceiveBatch(handler) }
        )
    }

    /// `NdisReturnPackets`: the protocol is done with a received packet; its buffer is posted again (at the
    /// end of the batch, if one is being handed out).
    func returnReceived(_ chunk: Int) {
        receiveFreeChunks.append(Int32(chunk))
        if !receiveBatchOpen { postReceiveBuffers() }
    }
}

/// One packet of a receive batch, as this side recorded it (never re-read from the ring).
struct ReceivedEntry {
    let chunk: Int32
    let offset: Int32
    let length: Int32
    let layout: NetPacketLayout
    var taken = false
}

/// The packets one poll took from the receive ring, in ring order, read in place in the binding's data area.
/// Valid only inside the handler it is given to: what the handler does not `take` is returned when it ends.
public struct ReceivedBatch: ~Copyable {
    let adapter: Adapter
    let serial: UInt64
    /// Packets in the batch.
    public let count: Int

    /// The batch's entry `i`; only while its handler runs (a batch swapped out of it, say, is refused).
    func entry(_ i: Int) -> ReceivedEntry {
        precondition(
            adapter.receiveBatchOpen && adapter.receiveBatchSerial == serial, "a receive batch used outside its handler"
        )
        precondition(i >= 0 && i < count, "no such packet in the batch")
        return adapter.receiveBatch[i]
    }

    /// The frame's length in bytes.
    public func length(at i: Int) -> Int { Int(entry(i).length) }
    /// The layout the driver reported.
    public func layout(at i: Int) -> NetPacketLayout { entry(i).layout }

    /// The bytes of packet `i`, in place (valid only inside `body`), while it is still in the batch.
    public func withUnsafeBytes<R>(at i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let entry = self.entry(i)
        precondition(!entry.taken, "a packet taken out of its batch is read through its ReceivedPacket")
        let start = Int(entry.chunk) * adapter.configuration.chunkSize + Int(entry.offset)
        return try adapter.regions.data.withBytes(start..<start + Int(entry.length)) {
            try body(UnsafeRawBufferPointer($0))
        }
    }

    /// Takes packet `i` out of the batch, to keep past it (dropping the `ReceivedPacket` returns it); nil if
    /// it was taken already.
    public mutating func take(at i: Int) -> ReceivedPacket? {
        let entry = self.entry(i)
        guard !entry.taken else { return nil }
        adapter.receiveBatch[i].taken = true
        return ReceivedPacket(
            adapter: adapter, chunk: Int(entry.chunk), offset: Int(entry.offset), length: Int(entry.length),
            layout: entry.layout)
    }
}
