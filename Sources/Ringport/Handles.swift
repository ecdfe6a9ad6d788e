public import RingportCore

/// A handle's reference to its binding, not counted per handle: the binding counts its live handles and
/// holds one reference to itself while there are any (`Adapter.handleCreated`/`handleDropped`), so it
/// outlives every handle, and a handle reaches it without a retain or release.
struct BindingReference {
    let reference: UncountedReference<Adapter>

    init(_ adapter: Adapter) { reference = UncountedReference(adapter) }

    /// Calls `body` with the binding, which the live-handle count keeps alive.
    @inline(__always) func callAsFunction<R>(_ body: (Adapter) throws -> R) rethrows -> R {
        try reference(body)
    }

    /// Calls `body` with the binding, then gives up one handle's count. The binding's last release, if this
    /// was its last handle, comes after `body` and outside the scope that promises the binding alive.
    @inline(__always) func dropHandle(_ body: (Adapter) -> Void) {
        let last = reference { adapter -> Bool in
            body(adapter)
            return adapter.handleDroppedKeepingReference()
        }
        if last { reference.release() }
    }

    @inline(__always) func refers(to adapter: Adapter) -> Bool { self { $0 === adapter } }
    @inline(__always) func refers(to other: BindingReference) -> Bool { other { refers(to: $0) } }
}

/// An NDIS packet descriptor of a binding's pool, held by the protocol (`PNDIS_PACKET`).
///
/// Non-copyable: `send` consumes it, so a sent packet, its buffers and its OOB block cannot be reached
/// until its send-complete hands a `Packet` back. Dropping a packet frees it and its buffers
/// (`NdisFreePacket`). Its fields live in the binding's segment.
public struct Packet: ~Copyable {
    let binding: BindingReference
    /// The descriptor's index in the binding's pool (stable for the packet's life; reused after it is freed).
    public let descriptorIndex: Int
    let generation: UInt32

    /// A new handle (counted by its binding).
    init(adapter: Adapter, index: Int, generation: UInt32) {
        self.init(binding: BindingReference(adapter), index: index, generation: generation)
    }

    init(binding: BindingReference, index: Int, generation: UInt32) {
        binding { $0.handleCreated() }
        self.binding = binding
        descriptorIndex = index
        self.generation = generation
    }

    /// The handle a `RawPacket` stood for (already counted).
    init(_ raw: RawPacket) {
        binding = raw.binding
        descriptorIndex = raw.index
        generation = raw.generation
    }

    deinit {
        binding.dropHandle { $0.freePacket(descriptorIndex, generation: generation) }
    }

    /// Gives up the handle without freeing the packet (it stays counted): `send` and `PacketArray` take
    /// packets this way.
    consuming func take() -> RawPacket {
        let raw = RawPacket(binding: binding, index: descriptorIndex, generation: generation)
        discard self
        return raw
    }

    #if DEBUG
        /// A second handle to the same descriptor, which safe code cannot make: for tests of the runtime
        /// checks that catch a stale or doubly-sent handle. Debug builds only: a release build's clients
        /// cannot reach it, even with `@_spi(Testing) import`.
        @_spi(Testing) public func forgedCopy() -> Packet {
            Packet(binding: binding, index: descriptorIndex, generation: generation)
        }
    #endif

    /// Calls `body` with the binding, once the handle is checked to be current and held.
    @inline(__always) func withOwner<R>(_ body: (Adapter) throws -> R) rethrows -> R {
        try binding { adapter in
            adapter.checkHeld(descriptorIndex, generation)
            return try body(adapter)
        }
    }
    var descriptor: PacketDescriptor { withOwner { $0.regions.descriptors[descriptorIndex] } }

    // MARK: NdisQueryPacket

    /// Buffers chained to the packet.
    public var bufferCount: Int { withOwner { Int($0.chainCount[descriptorIndex]) } }
    /// Bytes in all chained buffers.
    public var totalLength: Int { withOwner { Int($0.chainLength[descriptorIndex]) } }

    // MARK: Buffer chain

    /// `NdisChainBufferAtBack`. A buffer of another binding is not chained: this packet's binding records a
    /// `.foreignBinding` misuse, the packet is unchanged, and the buffer goes back to its own binding's pool.
    public mutating func chainAtBack(_ buffer: consuming Buffer) {
        binding { $0.checkHeld(descriptorIndex, generation) }
        guard let index = buffer.take(by: binding, for: descriptorIndex) else { return }
        binding { $0.chain(index, to: descriptorIndex, atFront: false) }
    }
    /// `NdisChainBufferAtFront`; a buffer of another binding is refused as by `chainAtBack`.
    public mutating func chainAtFront(_ buffer: consuming Buffer) {
        binding { $0.checkHeld(descriptorIndex, generation) }
        guard let index = buffer.take(by: binding, for: descriptorIndex) else { return }
        binding { $0.chain(index, to: descriptorIndex, atFront: true) }
    }
    /// `NdisUnchainBufferAtFront`: the first buffer, or nil when the chain is empty.
    public mutating func unchainAtFront() -> Buffer? {
        withOwner { $0.unchain(from: descriptorIndex, atFront: true) }.map { Buffer(binding: binding, index: $0) }
    }
    /// `NdisUnchainBufferAtBack`.
    public mutating func unchainAtBack() -> Buffer? {
        withOwner { $0.unchain(from: descriptorIndex, atFront: false) }.map { Buffer(binding: binding, index: $0) }
    }

    /// `NdisQueryBuffer`: the bytes of the `position`-th chained buffer, to read or rewrite in place (as a
    /// sender reusing a completed packet does, without unchaining).
    public func withUnsafeMutableBytes<R>(
        ofBufferAt position: Int,
        _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) rethrows -> R {
        try withOwner { adapter in
            precondition(position >= 0 && position < Int(adapter.chainCount[descriptorIndex]), "no such buffer")
            var buffer = Int(adapter.chainHead[descriptorIndex])
            for _ in 0..<position { buffer = Int(adapter.bufferNext[buffer]) }
            let start = buffer * adapter.configuration.chunkSize + Int(adapter.bufferOffset[buffer])
            return try adapter.regions.data.withBytes(start..<start + Int(adapter.bufferLength[buffer])) {
                try body($0)
            }
        }
    }

    /// `NdisReinitializePacket`: empties the chain (freeing any buffer still on it), clears the flags and
    /// the OOB block, ready for another send. Cheaper than free and allocate.
    public mutating func reinitialize() {
        withOwner { $0.reinitialize(descriptorIndex) }
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
    /// `NDIS_GET_PACKET_TIME_RECEIVED`: the out-of-band receive time (not interpreted by the library).
    public var timeReceived: UInt64 {
        get { descriptor.timeReceived }
        nonmutating set { descriptor.timeReceived = newValue }
    }
    /// `NDIS_SET_PACKET_HEADER_SIZE`: the out-of-band header size in bytes, which the driver may read.
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
    let binding: BindingReference
    let index: Int

    /// A new handle (counted by its binding).
    init(adapter: Adapter, index: Int) {
        self.init(binding: BindingReference(adapter), index: index)
    }

    init(binding: BindingReference, index: Int) {
        binding { $0.handleCreated() }
        self.binding = binding
        self.index = index
    }

    deinit {
        binding.dropHandle { $0.freeBuffer(index) }
    }

    /// Gives up the handle to be chained to packet `descriptor` of `expected`; nil (the misuse recorded on
    /// `expected`, the buffer freed to its own binding as it goes away) if it is another binding's.
    consuming func take(by expected: BindingReference, for descriptor: Int) -> Int? {
        guard binding.refers(to: expected) else {
            expected { $0.misuses.append(PacketMisuse(kind: .foreignBinding, descriptor: descriptor)) }
            _ = consume self  // freed to its own binding
            return nil
        }
        let index = self.index
        let binding = self.binding
        discard self
        binding.dropHandle { _ in }  // chained: the packet's handle stands for it now
        return index
    }

    /// The buffer's length in bytes.
    public var length: Int { binding { Int($0.bufferLength[index]) } }
    /// The most bytes it can hold (its chunk's size less its offset).
    public var capacity: Int { binding { $0.configuration.chunkSize - Int($0.bufferOffset[index]) } }

    /// Sets where the bytes start in the chunk and how many there are (`NdisAdjustBufferLength`).
    public mutating func adjust(offset: Int = 0, length: Int) {
        binding { adapter in
            let chunkSize = adapter.configuration.chunkSize
            precondition(offset >= 0 && length >= 0 && offset + length <= chunkSize && offset <= Int(UInt16.max))
            adapter.bufferOffset[index] = UInt32(offset)
            adapter.bufferLength[index] = UInt32(length)
        }
    }

    /// The buffer's bytes, in the shared data area (zero copy: the miniport reads them in place).
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try binding { adapter in
            let start = index * adapter.configuration.chunkSize + Int(adapter.bufferOffset[index])
            return try adapter.regions.data.withBytes(start..<start + Int(adapter.bufferLength[index])) {
                try body($0)
            }
        }
    }

    /// Copies `bytes` to the start of the buffer and sets its length to their count.
    public mutating func write(_ bytes: some Collection<UInt8>) {
        adjust(offset: binding { Int($0.bufferOffset[index]) }, length: bytes.count)
        withUnsafeMutableBytes { $0.copyBytes(from: bytes) }
    }
}

/// A packet held by a `PacketArray` or a pending completion: a handle, counted by its binding like a
/// `Packet`, until it becomes a `Packet` again, is sent, or is freed.
struct RawPacket {
    let binding: BindingReference
    let index: Int
    let generation: UInt32
}

/// An ordered array of packets to send (`PPNDIS_PACKET PacketArray`). Non-copyable; dropping it frees the
/// packets it still holds. `Adapter.send(_:)` consumes it, or empties it in place (keeping its capacity,
/// so a sending loop allocates nothing).
public struct PacketArray: ~Copyable {
    var packets: LocalStack<RawPacket>

    /// An empty array.
    public init() { packets = LocalStack() }
    /// An empty array with room for `capacity` packets, so filling it up to that allocates nothing.
    public init(reservingCapacity capacity: Int) { packets = LocalStack(reservingCapacity: capacity) }

    deinit {
        for i in 0..<packets.count {
            let raw = packets[i]
            raw.binding.dropHandle { $0.freePacket(raw.index, generation: raw.generation) }
        }
    }

    /// The packets in the array.
    public var count: Int { packets.count }
    /// Whether the array holds no packet.
    public var isEmpty: Bool { packets.isEmpty }

    /// Adds `packet` at the end; the array owns it until it is sent, taken out, or freed with the array.
    public mutating func append(_ packet: consuming Packet) { packets.append(packet.take()) }

    /// Removes and returns the last packet.
    public mutating func popLast() -> Packet? {
        isEmpty ? nil : removeLast()
    }

    /// Removes and returns the last packet; the array must not be empty.
    public mutating func removeLast() -> Packet { Packet(packets.removeLast()) }
}
