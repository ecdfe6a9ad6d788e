import Atomics
public import RingportCore
import _RingportShim

// Shared memory: both processes use these words. The sleeper alone stores its flag; any waker changes the
// word only by atomic add. model/ring.pml verifies this protocol (Docs/Design.md, "Wake-up protocol").

extension WakeWords {
    /// Waker side, after publishing an index with release: wakes the sleeper only if it said it sleeps.
    /// The sequentially consistent fence orders the index store before the flag load (StoreLoad); without
    /// it the model finds a lost wake-up (`NOFENCE_WAKER`).
    @inlinable package func wakeIfNeeded() {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if flag.load() != 0 { wake() }
    }

    /// `wakeIfNeeded` for many words: one `orderIndexStoresBeforeFlags()` after the index stores, then this
    /// on each word.
    @inlinable package func wakeIfFlagged() {
        if flag.load() != 0 { wake() }
    }

    /// The fence of `wakeIfNeeded` (StoreLoad: index stores before the flag loads), for `wakeIfFlagged`.
    @inlinable package static func orderIndexStoresBeforeFlags() {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }

    /// Changes the word (so a sleeper about to wait on the old value returns at once), then wakes.
    @inline(never) @usableFromInline package func wake() {
        word.add(1)
        Futex.wake(word.futexAddress)
    }

    /// Sleeper side: announces the sleep, re-checks with `hasWork` after the fence, and sleeps on the word
    /// unless there is work or `timeoutNanoseconds` passes. Returns whether it slept. Spurious returns are
    /// fine: callers loop and look for work again.
    package func sleep(timeoutNanoseconds: Int64?, hasWork: () -> Bool) -> Bool {
        let seen = word.load()  // before the re-check (SEEN_LATE fails)
        flag.store(1)
        atomicMemoryFence(ordering: .sequentiallyConsistent)  // flag store before the re-check's loads
        var slept = false
        if !hasWork() {
            _ = Futex.wait(word.futexAddress, expected: seen, timeoutNanoseconds: timeoutNanoseconds)
            slept = true
        }
        flag.store(0)  // only the sleeper clears its flag
        return slept
    }
}

/// Sleeps on many wake words at once (`futex_waitv`): the miniport's idle wait over every binding.
package enum MultiWait {
    package static let limit = 128

    /// Announces on every channel, re-checks with `hasWork` after one fence, then waits until any word
    /// changes or `timeoutNanoseconds` passes. `extra` words (process-local doorbells) are waited on too;
    /// their wakers always wake.
    package static func sleep(
        on channels: [WakeWords],
        extra: some Collection<SharedWord>,
        timeoutNanoseconds: Int64?,
        hasWork: () -> Bool
    ) {
        let count = channels.count + extra.count
        precondition(count <= limit && count > 0)
        // On the stack: a sleep allocates nothing.
        withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<UInt32>?.self, capacity: count) { words in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: count) { expected in
                for (i, channel) in channels.enumerated() {
                    words[i] = channel.word.futexAddress
                    expected[i] = channel.word.load()
                }
                for (i, word) in extra.enumerated() {
                    words[channels.count + i] = word.futexAddress
                    expected[channels.count + i] = word.load()
                }
                for channel in channels { channel.flag.store(1) }
                atomicMemoryFence(ordering: .sequentiallyConsistent)
                if !hasWork() {
                    let result = rp_futex_waitv(
                        words.baseAddress, expected.baseAddress, UInt32(count), timeoutNanoseconds ?? -1)
                    precondition(
                        result >= 0 || [-EAGAIN, -EINTR, -ETIMEDOUT].contains(result), "futex_waitv: \(-result)")
                }
            }
        }
        for channel in channels { channel.flag.store(0) }
    }
}
