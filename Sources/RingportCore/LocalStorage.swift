// Process-local storage for one binding's bookkeeping (never shared memory): fixed tables and a growable
// stack without copy-on-write, so the per-packet paths pay no uniqueness check and no reference count.

/// A fixed-size table of `count` elements, owned by one binding and used from one thread at a time.
/// Reads and writes are bounds-checked.
@usableFromInline package struct LocalTable<Element>: ~Copyable {
    @usableFromInline let base: UnsafeMutablePointer<Element>
    @usableFromInline package let count: Int

    @usableFromInline package init(repeating value: Element, count: Int) {
        precondition(count >= 0, "negative table size")
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: value, count: count)
        self.count = count
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    @inlinable package subscript(index: Int) -> Element {
        get {
            precondition(index >= 0 && index < count, "table index out of range")
            return base[index]
        }
        nonmutating set {
            precondition(index >= 0 && index < count, "table index out of range")
            base[index] = newValue
        }
    }
}

/// A growable stack (an array that only appends and removes at its end), owned by one user and used from
/// one thread at a time. Keeps its capacity when emptied.
@usableFromInline package struct LocalStack<Element>: ~Copyable {
    @usableFromInline var base: UnsafeMutablePointer<Element>
    @usableFromInline var capacity: Int
    @usableFromInline var _count = 0

    @usableFromInline package init(reservingCapacity capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        base = .allocate(capacity: self.capacity)
    }

    deinit {
        base.deinitialize(count: _count)
        base.deallocate()
    }

    @inlinable package var count: Int { _count }
    @inlinable package var isEmpty: Bool { _count == 0 }

    @inlinable package subscript(index: Int) -> Element {
        precondition(index >= 0 && index < _count, "stack index out of range")
        return base[index]
    }

    @inlinable package mutating func append(_ element: Element) {
        if _count == capacity { grow() }
        (base + _count).initialize(to: element)
        _count += 1
    }

    /// Removes and returns the last element; the stack must not be empty.
    @inlinable package mutating func removeLast() -> Element {
        precondition(_count > 0, "removeLast on an empty stack")
        _count -= 1
        return (base + _count).move()
    }

    /// Empties the stack, keeping its capacity.
    @inlinable package mutating func removeAll() {
        base.deinitialize(count: _count)
        _count = 0
    }

    @usableFromInline mutating func grow() {
        let larger = UnsafeMutablePointer<Element>.allocate(capacity: capacity * 2)
        larger.moveInitialize(from: base, count: _count)
        base.deallocate()
        base = larger
        capacity *= 2
    }
}

/// A first-in first-out queue of at most `capacity` elements in a fixed ring, owned by one user and used
/// from one thread at a time.
@usableFromInline package struct LocalQueue<Element>: ~Copyable {
    @usableFromInline let storage: LocalTable<Element?>
    @usableFromInline var head = 0
    @usableFromInline var _count = 0

    @usableFromInline package init(capacity: Int) { storage = LocalTable(repeating: nil, count: max(capacity, 1)) }

    @inlinable package var count: Int { _count }
    @inlinable package var isEmpty: Bool { _count == 0 }
    @inlinable package var capacity: Int { storage.count }

    /// The storage slot `k` places after the front (`k` < capacity).
    @inlinable func slot(_ k: Int) -> Int {
        let i = head + k
        return i >= storage.count ? i - storage.count : i
    }

    /// The `k`-th element from the front.
    @inlinable package subscript(k: Int) -> Element {
        precondition(k >= 0 && k < _count, "queue position out of range")
        return storage[slot(k)]!
    }

    @inlinable package mutating func append(_ element: Element) {
        precondition(_count < storage.count, "queue full")
        storage[slot(_count)] = element
        _count += 1
    }

    /// Puts `element` before the front.
    @inlinable package mutating func prepend(_ element: Element) {
        precondition(_count < storage.count, "queue full")
        head = slot(storage.count - 1)
        storage[head] = element
        _count += 1
    }

    /// Removes the front element; the queue must not be empty.
    @inlinable package mutating func removeFirst() {
        precondition(_count > 0, "removeFirst on an empty queue")
        storage[head] = nil
        head = slot(1)
        _count -= 1
    }

    @usableFromInline package mutating func removeAll() {
        while _count > 0 { removeFirst() }
        head = 0
    }
}
