// Shared memory: the data area holds payload in fixed-size chunks; the peer writes the chunks it owns
// while we read ours. Every range comes from `NetFragment.checkedSpan`, so it lies inside the area.

/// The data area of a segment: `chunkCount` chunks of `chunkSize` bytes that fragments point into.
@frozen
@usableFromInline package struct DataArea {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline package let chunkCount: Int
    @usableFromInline package let chunkSize: Int

    /// A view of `region` cut into chunks of `chunkSize` bytes.
    @usableFromInline package init(_ region: UnsafeMutableRawBufferPointer, chunkSize: Int) {
        precondition(chunkSize > 0 && region.count >= chunkSize, "data area smaller than a chunk")
        base = region.baseAddress!
        self.chunkSize = chunkSize
        chunkCount = region.count / chunkSize
    }

    /// The fragment's payload range, if its fields fit this area (see `NetFragment.checkedSpan`).
    @inlinable package func span(of fragment: NetFragment) -> Range<Int>? {
        fragment.checkedSpan(chunkCount: chunkCount, chunkSize: chunkSize)
    }

    /// Calls `body` with the bytes of `range`, which must lie inside the area.
    @inlinable package func withBytes<R, E: Error>(
        _ range: Range<Int>,
        _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= chunkCount * chunkSize, "range outside the data area")
        return try body(UnsafeMutableRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }
}
