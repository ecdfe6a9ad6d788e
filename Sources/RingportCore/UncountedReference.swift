/// A reference to an object that someone else keeps alive, used without reference counting: the library's
/// handles (their binding counts them and holds itself while any exist) and the miniport's pass over the
/// bindings it holds. The unsafe part of both, in one place.
@frozen
@usableFromInline package struct UncountedReference<Object: AnyObject> {
    @usableFromInline let unmanaged: Unmanaged<Object>

    @inlinable package init(_ object: Object) { unmanaged = .passUnretained(object) }

    /// Calls `body` with the object, which the caller promises stays alive meanwhile.
    @inlinable @inline(__always) package func callAsFunction<R>(_ body: (Object) throws -> R) rethrows -> R {
        try unmanaged._withUnsafeGuaranteedRef(body)
    }

    /// One strong reference more (an object keeping itself alive).
    @inlinable package func retain() { _ = unmanaged.retain() }

    /// Gives one back; the caller must not use the object after it (it may be the last).
    @inlinable package func release() { unmanaged.release() }
}
