import Atomics

// Shared memory: the peer loads and stores this word at the same time; every access is atomic.

/// A 32-bit atomic word in shared memory (a flag, a counter, a futex word).
@frozen
@usableFromInline package struct SharedWord {
    @usableFromInline let address: UnsafeMutablePointer<UInt32>

    /// A word at `offset` in `region`; the offset must be 4-byte aligned and inside the region.
    @usableFromInline package init(_ region: UnsafeMutableRawBufferPointer, offset: Int) {
        precondition(offset >= 0 && offset % 4 == 0 && offset + 4 <= region.count, "word outside its region")
        address = (region.baseAddress! + offset).bindMemory(to: UInt32.self, capacity: 1)
    }

    @inlinable var atomic: UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: UnsafeMutableRawPointer(address).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    /// Acquire: pairs with `store`'s release.
    @inlinable package func load() -> UInt32 { atomic.load(ordering: .acquiring) }
    /// Release: everything written before it is visible to a peer that loads the new value.
    @inlinable package func store(_ value: UInt32) { atomic.store(value, ordering: .releasing) }
    /// Sequentially consistent read-modify-write; returns the old value.
    @inlinable @discardableResult package func add(_ value: UInt32) -> UInt32 {
        atomic.loadThenWrappingIncrement(by: value, ordering: .sequentiallyConsistent)
    }
    /// The word's address, for futex calls.
    @usableFromInline package var futexAddress: UnsafeMutablePointer<UInt32> { address }
}
