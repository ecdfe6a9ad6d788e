import RingportSystem
import Testing

@testable import RingTransfer

/// The idle wait both transfer sides use.
struct BackoffTests {
    static func now() -> UInt64 { ProcessControl.monotonicNanoseconds() }

    /// Idle spells of at most 50 ms (or 1,000 pauses), each ended by progress, for three timeouts' worth of
    /// time: `pause` must never give up, since no wait without progress came near the 0.5 s timeout. (The bug:
    /// the deadline was fixed when the backoff was made, so a run longer than the timeout failed at the first
    /// deadline check after it: the old "hang".)
    @Test func pauseGivesUpOnlyAfterTheTimeoutWithoutProgressNotAfterTheTimeoutInTotal() {
        var backoff = Backoff(timeoutSeconds: 0.5, spins: 4)
        let start = Self.now()
        let end = start + 1_500_000_000
        var gaveUp = false
        // Spells past the timeout long enough to reach a deadline check (every 256 pauses): the test proves
        // something only if some did.
        var checkedLate = 0
        while Self.now() < end && !gaveUp {
            let spell = Self.now()
            var pauses = 0
            while pauses < 1_000 && Self.now() - spell < 50_000_000 && !gaveUp {
                gaveUp = !backoff.pause()
                pauses += 1
            }
            if pauses >= 256 && spell - start > 500_000_000 { checkedLate += 1 }
            backoff.progressed()
        }
        #expect(!gaveUp, "gave up after \(Double(Self.now() - start) / 1e9) s with progress every 50 ms")
        #expect(checkedLate > 0)
    }

    /// And it does give up once a wait without progress passes the timeout.
    @Test func pauseGivesUpOnceTheTimeoutPassesWithoutProgress() {
        var backoff = Backoff(timeoutSeconds: 0.2, spins: 4)
        for _ in 0..<100 { _ = backoff.pause() }
        backoff.progressed()
        let start = Self.now()
        let limit = start + 10_000_000_000
        while backoff.pause() && Self.now() < limit {}
        let waited = Double(Self.now() - start) / 1e9
        // The upper bound is loose: the deadline is read every 256 yields, slow on a loaded machine.
        #expect(waited >= 0.2 && waited < 5, "gave up after \(waited) s")
    }
}
