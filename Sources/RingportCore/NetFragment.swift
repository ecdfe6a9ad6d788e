import _RingportShim

// Shared memory: a fragment element belongs to one side at a time, like a packet element. Its chunk,
// offset and lengths come from the peer when the peer wrote them: check them against the data area
// (`NetFragment.checkedSpan`) before touching payload.

/// A view of one fragment element (`NET_FRAGMENT`, unpacked, plus the data chunk it points at).
@frozen
public struct NetFragment: NetRingElement {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let shadow: UnsafeMutableRawPointer?
    @usableFromInline unowned(unsafe) let verifier: NetRingVerifier?
    /// The element's index in the fragment ring.
    public let index: UInt32

    @usableFromInline package static let size = MemoryLayout<rp_net_fragment>.size

    @usableFromInline enum Offset {
        @usableFromInline static let validLength = 0
        @usableFromInline static let capacity = 4
        @usableFromInline static let chunk = 8
        @usableFromInline static let offset = 12
        @usableFromInline static let flags = 14
    }
    @usableFromInline static let scratchBit: UInt8 = 0x1
    @usableFromInline static let bouncedBit: UInt8 = 0x2

    @inlinable init(
        base: UnsafeMutableRawPointer,
        shadow: UnsafeMutableRawPointer?,
        verifier: NetRingVerifier?,
        index: UInt32
    ) {
        self.base = base
        self.shadow = shadow
        self.verifier = verifier
        self.index = index
    }

    /// Fragments live in a collection's fragment ring.
    public static var ringType: NetRingType { .fragment }

    /// A view of element `index` of `ring`, checked through `verifier` when there is one.
    @inlinable public init(_ ring: NetRing, at index: UInt32, verifier: NetRingVerifier?) {
        self.init(
            base: ring.element(at: index),
            shadow: verifier.map { $0.fragment.shadow(at: index) },
            verifier: verifier,
            index: index
        )
    }

    /// Bytes of payload, starting at `offset` in the chunk.
    @inlinable public var validLength: UInt32 {
        get { base.load(fromByteOffset: Offset.validLength, as: UInt32.self) }
        nonmutating set { store(newValue, at: Offset.validLength, field: .validLength) }
    }
    /// Bytes the buffer can hold from the start of the chunk.
    @inlinable public var capacity: UInt32 {
        get { base.load(fromByteOffset: Offset.capacity, as: UInt32.self) }
        nonmutating set { store(newValue, at: Offset.capacity, field: .capacity) }
    }
    /// Index of the data-area chunk holding the payload.
    @inlinable public var chunk: UInt32 {
        get { base.load(fromByteOffset: Offset.chunk, as: UInt32.self) }
        nonmutating set { store(newValue, at: Offset.chunk, field: .chunk) }
    }
    /// Where the payload starts in the chunk.
    @inlinable public var offset: UInt16 {
        get { base.load(fromByteOffset: Offset.offset, as: UInt16.self) }
        nonmutating set { store(newValue, at: Offset.offset, field: .offset) }
    }
    /// The driver's one bit.
    @inlinable public var scratch: Bool {
        get { flags & Self.scratchBit != 0 }
        nonmutating set {
            store(newValue ? flags | Self.scratchBit : flags & ~Self.scratchBit, at: Offset.flags, field: .scratch)
        }
    }

    @inlinable var flags: UInt8 { base.load(fromByteOffset: Offset.flags, as: UInt8.self) }

    @inlinable func store<T: FixedWidthInteger>(_ value: T, at offset: Int, field: FragmentField) {
        verifier?.willWrite(fragment: index, field: field)
        base.storeBytes(of: value, toByteOffset: offset, as: T.self)
        shadow?.storeBytes(of: value, toByteOffset: offset, as: T.self)
    }

    /// Writes the whole element at once, as the OS does when it reuses one (`reset`, then the fields):
    /// `Scratch` and the other flags zero, two stores.
    @inlinable package func fill(validLength: UInt32, capacity: UInt32, chunk: UInt32, offset: UInt16) {
        if verifier != nil { verifier!.willWrite(fragment: index, field: .all) }  // unchecked: no retain
        // Little-endian bytes 0-7: validLength, capacity; 8-15: chunk, offset, flags, padding.
        let low = UInt64(validLength) | UInt64(capacity) << 32
        let high = UInt64(chunk) | UInt64(offset) << 32
        base.storeBytes(of: low.littleEndian, toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: high.littleEndian, toByteOffset: 8, as: UInt64.self)
        shadow?.storeBytes(of: low.littleEndian, toByteOffset: 0, as: UInt64.self)
        shadow?.storeBytes(of: high.littleEndian, toByteOffset: 8, as: UInt64.self)
    }

    /// Zeroes the element before the OS fills it again.
    @inlinable package func reset() {
        verifier?.willWrite(fragment: index, field: .all)
        base.storeBytes(of: 0, toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: 0, toByteOffset: 8, as: UInt64.self)
        shadow?.storeBytes(of: 0, toByteOffset: 0, as: UInt64.self)
        shadow?.storeBytes(of: 0, toByteOffset: 8, as: UInt64.self)
    }

    /// The payload's byte range in the data area, if the fragment's chunk, offset, length and capacity
    /// are all consistent with a data area of `chunkCount` chunks of `chunkSize` bytes; nil otherwise.
    /// The fields are loaded once, so a peer changing them meanwhile cannot split the check from the use.
    @inlinable public func checkedSpan(chunkCount: Int, chunkSize: Int) -> Range<Int>? {
        let chunk = Int(self.chunk)
        let capacity = Int(self.capacity)
        let start = Int(self.offset)
        let length = Int(self.validLength)
        guard chunk < chunkCount, capacity <= chunkSize, start <= capacity, length <= capacity - start else {
            return nil
        }
        let origin = chunk * chunkSize + start
        return origin..<origin + length
    }
}

/// The fields of a fragment element, named in checked-mode reports.
@usableFromInline package enum FragmentField: String, Sendable {
    case validLength, capacity, chunk, offset, scratch, all
}
