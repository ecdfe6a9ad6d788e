import Atomics
import CRingportShim
public import RingportCore

// Shared memory: both processes use these words. The sleeper alone stores its flag; any waker changes the
// word only by atomic add. This is the protocol shared/model verifies (DESIGN.md, wake-up protocol).

extension WakeWords {
    /// Waker side, after publishing an index with release: wakes the sleeper only if it said it sleeps.
    /// The sequentially consistent fence orders the index store before the flag load (StoreLoad); without
    /// it the model finds a lost wake-up (`NOFENCE_WAKER`).
    @inlinable public func wakeIfNeeded() {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if flag.load() != 0 { wake() }
    }

    /// Changes the word (so a sleeper about to wait on the old value returns at once), then wakes.
    @inline(never) public func wake() {
        word.add(1)
        Futex.wake(word.futexAddress)
    }

    /// Sleeper side: announces the sleep, re-checks with `hasWork` after the fence, and sleeps on the word
    /// unless there is work or `timeoutNanoseconds` passes. Returns whether it slept. Spurious returns are
    /// fine: callers loop and look for work again.
    public func sleep(timeoutNanoseconds: Int64?, hasWork: () -> Bool) -> Bool {
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
public enum MultiWait {
    public static let limit = 128

    /// Announces on every channel, re-checks with `hasWork` after one fence, then waits until any word
    /// changes or `timeoutNanoseconds` passes. `extra` words (process-local doorbells) are waited on too;
    /// their wakers always wake.
    public static func sleep(
        on channels: [WakeWords],
        extra: [SharedWord],
        timeoutNanoseconds: Int64?,
        hasWork: () -> Bool
    ) {
        precondition(channels.count + extra.count <= limit && channels.count + extra.count > 0)
        var words: [UnsafeMutablePointer<UInt32>?] = []
        var expected: [UInt32] = []
        for channel in channels {
            words.append(channel.word.futexAddress)
            expected.append(channel.word.load())
        }
        for word in extra {
            words.append(word.futexAddress)
            expected.append(word.load())
        }
        for channel in channels { channel.flag.store(1) }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if !hasWork() {
            let result = words.withUnsafeBufferPointer { w in
                rp_futex_waitv(w.baseAddress, expected, UInt32(words.count), timeoutNanoseconds ?? -1)
            }
            precondition(result >= 0 || [-EAGAIN, -EINTR, -ETIMEDOUT].contains(result), "futex_waitv: \(-result)")
        }
        for channel in channels { channel.flag.store(0) }
    }
}
