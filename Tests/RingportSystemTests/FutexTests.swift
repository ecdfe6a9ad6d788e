import Glibc
import Testing

@testable import RingportSystem

/// A word shared between threads of this process (the futex calls are the shared, cross-process kind).
final class Word: @unchecked Sendable {
    let pointer = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    init(_ value: UInt32) { pointer.initialize(to: value) }
    deinit { pointer.deallocate() }
}

@Suite struct FutexTests {
    @Test func waitTimesOutWhenNobodyWakes() {
        let word = Word(7)
        #expect(Futex.wait(word.pointer, expected: 7, timeoutNanoseconds: 2_000_000) == .timedOut)
    }

    @Test func waitReturnsAtOnceWhenTheWordDiffers() {
        let word = Word(7)
        #expect(Futex.wait(word.pointer, expected: 8, timeoutNanoseconds: 1_000_000_000) == .valueChanged)
    }

    @Test func wakeWakesASleeper() async throws {
        let word = Word(0)
        let sleeper = Task.detached {
            // Bounded: a lost wake-up fails the test instead of hanging it.
            var result = Futex.WaitResult.valueChanged
            let deadline = ProcessControl.monotonicNanoseconds() + 5_000_000_000
            while word.pointer.pointee == 0 && ProcessControl.monotonicNanoseconds() < deadline {
                result = Futex.wait(word.pointer, expected: 0, timeoutNanoseconds: 5_000_000_000)
            }
            return (result, word.pointer.pointee)
        }
        try await Task.sleep(nanoseconds: 20_000_000)
        word.pointer.pointee = 1
        var woken = 0
        for _ in 0..<500 where woken == 0 {
            woken = Futex.wake(word.pointer)
            usleep(1000)
        }
        let (result, value) = await sleeper.value
        #expect(value == 1)
        #expect(woken == 1 || result == .valueChanged)
    }
}

@Suite struct ProcessControlTests {
    @Test func pinningToAMissingCPUNamesTheCall() {
        do {
            try ProcessControl.pin(toCPU: 1000)
            Issue.record("pinned to CPU 1000")
        } catch {
            #expect(error.call.hasPrefix("sched_setaffinity") && error.errno == .invalidArgument)
        }
    }

    @Test func monotonicClockMoves() {
        let a = ProcessControl.monotonicNanoseconds()
        usleep(1000)
        #expect(ProcessControl.monotonicNanoseconds() > a)
    }
}
