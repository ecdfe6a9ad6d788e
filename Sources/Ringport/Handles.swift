public import RingportCore

/// An NDIS packet descriptor of a binding's pool, held by the protocol (`PNDIS_PACKET`).
///
/// Non-copyable: `send` consumes it, so a sent packet, its buffers and its OOB block cannot be reached
/// until its send-complete hands a `Packet` back. Dropping a packet frees it and its buffers
/// (`NdisFreePacket`). Its fields live in the binding's segment.
public struct Packet: ~Copyable {
    var adapter: Adapter?
    public let descriptorIndex: Int
    let generation: UInt32

    init(adapter: Adapter, index: Int, generation: UInt32) {
        self.adapter = adapter
        self.descriptorIndex = index
        self.generation = generation
    }

    deinit { adapter?.freePacket(descriptorIndex, generation: generation) }

    /// Gives up the handle without freeing the packet: `send` and `PacketArray` take packets this way.
    consuming func take() -> RawPacket {
        let raw = RawPacket(adapter: adapter!, index: descriptorIndex, generation: generation)
        adapter = nil
        return raw
    }

    #if DEBUG
        /// A second handle to the same descriptor, which safe code cannot make: for tests of the runtime
        /// checks that catch a stale or doubly-sent handle. Debug builds only: a release build's clients
        /// cannot reach it, even with `@_spi(Testing) import`.
        @_spi(Testing) public func forgedCopy() -> Packet {
            Packet(adapter: adapter!, index: descriptorIndex, generation: generation)
        }
    #endif

    var owner: Adapter {
        guard let adapter else { preconditionFailure("packet handle used after it was given up") }
        adapter.checkHeld(descriptorIndex, generation)
        return adapter
    }
    var descriptor: PacketDescriptor { owner.regions.descriptors[descriptorIndex] }

    // MARK: NdisQueryPacket

    /// Buffers chained to the packet.
    public var bufferCount: Int { Int(owner.chainCount[descriptorIndex]) }
    /// Bytes in all chained buffers.
    public var totalLength: Int { Int(owner.chainLength[descriptorIndex]) }

    // MARK: Buffer chain

    /// `NdisChainBufferAtBack`. A buffer of another binding is not chained: this packet's binding records a
    /// `.foreignBinding` misuse, the packet is unchanged, and the buffer goes back to its own binding's pool.
    public mutating func chainAtBack(_ buffer: consuming Buffer) {
        let adapter = owner
        guard let index = buffer.take(by: adapter, for: descriptorIndex) else { return }
        adapter.chain(index, to: descriptorIndex, atFront: false)
    }
    /// `NdisChainBufferAtFront`; a buffer of another binding is refused as by `chainAtBack`.
    public mutating func chainAtFront(_ buffer: consuming Buffer) {
        let adapter = owner
        guard let index = buffer.take(by: adapter, for: descriptorIndex) else { return }
        adapter.chain(index, to: descriptorIndex, atFront: true)
    }
    /// `NdisUnchainBufferAtFront`: the first buffer, or nil when the chain is empty.
    public mutating func unchainAtFront() -> Buffer? {
        let adapter = owner
        return adapter.unchain(from: descriptorIndex, atFront: true).map { Buffer(adapter: adapter, index: $0) }
    }
    /// `NdisUnchainBufferAtBack`.
    public mutating func unchainAtBack() -> Buffer? {
        let adapter = owner
        return adapter.unchain(from: descriptorIndex, atFront: false).map { Buffer(adapter: adapter, index: $0) }
    }

    /// `NdisQueryBuffer`: the bytes of the `position`-th chained buffer, to read or rewrite in place (as a
    /// sender reusing a completed packet does, without unchaining).
    public func withUnsafeMutableBytes<R>(
        ofBufferAt position: Int,
        _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) rethrows -> R {
        let adapter = owner
        precondition(position >= 0 && position < Int(adapter.chainCount[descriptorIndex]), "no such buffer")
        var buffer = Int(adapter.chainHead[descriptorIndex])
        for _ in 0..<position { buffer = Int(adapter.bufferNext[buffer]) }
        let start = buffer * adapter.configuration.chunkSize + Int(adapter.bufferOffset[buffer])
        return try adapter.regions.data.withBytes(start..<start + Int(adapter.bufferLength[buffer])) { try body($0) }
    }

    /// `NdisReinitializePacket`: empties the chain (freeing any buffer still on it), clears the flags and
    /// the OOB block, ready for another send. Cheaper than free and allocate.
    public mutating func reinitialize() {
        owner.reinitialize(descriptorIndex)
    }

    // MARK: Flags and out-of-band data

    /// `NdisGetPacketFlags`; setting replaces them.
    public var flags: PacketFlags {
        get { descriptor.flags }
        nonmutating set { descriptor.flags = newValue }
    }
    /// `NdisSetPacketFlags` (`|=`, as in the WDK headers).
    public func setFlags(_ flags: PacketFlags) { descriptor.flags = descriptor.flags.union(flags) }
    /// `NdisClearPacketFlags`.
    public func clearFlags(_ flags: PacketFlags) { descriptor.flags = descriptor.flags.subtracting(flags) }

    /// `NDIS_SET_PACKET_TIME_TO_SEND`.
    public var timeToSend: UInt64 {
        get { descriptor.timeToSend }
        nonmutating set { descriptor.timeToSend = newValue }
    }
    /// `NDIS_GET_PACKET_TIME_SENT`: the same eight bytes, which a miniport may set while it holds the packet.
    public var timeSent: UInt64 { descriptor.timeToSend }
    public var timeReceived: UInt64 {
        get { descriptor.timeReceived }
        nonmutating set { descriptor.timeReceived = newValue }
    }
    public var headerSize: Int {
        get { Int(descriptor.headerSize) }
        nonmutating set { descriptor.headerSize = UInt32(clamping: newValue) }
    }
    /// `NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO`: for example `.ieee8023Priority(5)`.
    public var mediaSpecificInformation: MediaSpecificInformation? {
        get { descriptor.mediaSpecificInformation }
        nonmutating set { descriptor.mediaSpecificInformation = newValue }
    }
    /// The `ProtocolReserved` bytes (as many as the pool was made with).
    public func withProtocolReserved<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try descriptor.withProtocolReserved(body)
    }
}

/// A buffer over one data-area chunk of the binding (`NDIS_BUFFER`). Dropping it frees it.
public struct Buffer: ~Copyable {
    var adapter: Adapter?
    let index: Int

    init(adapter: Adapter, index: Int) {
        self.adapter = adapter
        self.index = index
    }

    deinit { adapter?.freeBuffer(index) }

    /// Gives up the handle to be chained to packet `descriptor` of `expected`; nil (the misuse recorded on
    /// `expected`, the buffer freed to its own binding as it goes away) if it is another binding's.
    consuming func take(by expected: Adapter, for descriptor: Int) -> Int? {
        guard adapter === expected else {
            expected.misuses.append(PacketMisuse(kind: .foreignBinding, descriptor: descriptor))
            return nil
        }
        adapter = nil
        return index
    }

    var owner: Adapter { adapter! }

    /// The buffer's length in bytes.
    public var length: Int { Int(owner.bufferLength[index]) }
    /// The most bytes it can hold (its chunk's size less its offset).
    public var capacity: Int { owner.configuration.chunkSize - Int(owner.bufferOffset[index]) }

    /// Sets where the bytes start in the chunk and how many there are (`NdisAdjustBufferLength`).
    public mutating func adjust(offset: Int = 0, length: Int) {
        let chunkSize = owner.configuration.chunkSize
        precondition(offset >= 0 && length >= 0 && offset + length <= chunkSize && offset <= Int(UInt16.max))
        owner.bufferOffset[index] = UInt32(offset)
        owner.bufferLength[index] = UInt32(length)
    }

    /// The buffer's bytes, in the shared data area (zero copy: the miniport reads them in place).
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        let adapter = owner
        let start = index * adapter.configuration.chunkSize + Int(adapter.bufferOffset[index])
        return try adapter.regions.data.withBytes(start..<start + Int(adapter.bufferLength[index])) { try body($0) }
    }

    /// Copies `bytes` to the start of the buffer and sets its length to their count.
    public mutating func write(_ bytes: some Collection<UInt8>) {
        adjust(offset: Int(owner.bufferOffset[index]), length: bytes.count)
        withUnsafeMutableBytes { $0.copyBytes(from: bytes) }
    }
}

/// A packet held by a `PacketArray` or a pending completion.
struct RawPacket {
    let adapter: Adapter
    let index: Int
    let generation: UInt32
}

/// An ordered array of packets to send (`PPNDIS_PACKET PacketArray`). Non-copyable; dropping it frees the
/// packets it still holds. `Adapter.send(_:)` consumes it, or empties it in place (keeping its capacity,
/// so a sending loop allocates nothing).
public struct PacketArray: ~Copyable {
    var packets: [RawPacket] = []

    public init() {}
    public init(reservingCapacity capacity: Int) { packets.reserveCapacity(capacity) }

    deinit {
        for raw in packets { raw.adapter.freePacket(raw.index, generation: raw.generation) }
    }

    public var count: Int { packets.count }
    public var isEmpty: Bool { packets.isEmpty }

    public mutating func append(_ packet: consuming Packet) { packets.append(packet.take()) }

    /// Removes and returns the last packet.
    public mutating func popLast() -> Packet? {
        isEmpty ? nil : removeLast()
    }

    /// Removes and returns the last packet; the array must not be empty.
    public mutating func removeLast() -> Packet {
        let raw = packets.removeLast()
        return Packet(adapter: raw.adapter, index: raw.index, generation: raw.generation)
    }
}
