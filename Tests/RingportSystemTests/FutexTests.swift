import Foundation
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

    @Test func wakeWakesASleeper() throws {
        let word = Word(0)
        let outcome = Outcome()
        // A real thread: a futex sleeper must not block one of the few cooperative-pool threads.
        Thread.detachNewThread {
            outcome.set(Futex.wait(word.pointer, expected: 0, timeoutNanoseconds: 10_000_000_000))
        }
        // Wake until the sleeper is queued and woken (it may not be asleep yet on the first tries).
        var woken = 0
        let deadline = ProcessControl.monotonicNanoseconds() + 10_000_000_000
        while woken == 0 && ProcessControl.monotonicNanoseconds() < deadline {
            usleep(1000)
            woken = Futex.wake(word.pointer)
        }
        #expect(woken == 1)
        while outcome.get() == nil && ProcessControl.monotonicNanoseconds() < deadline { usleep(1000) }
        #expect(outcome.get() == .woken)
    }
}

final class Outcome: @unchecked Sendable {
    let lock = NSLock()
    var result: Futex.WaitResult?
    func set(_ value: Futex.WaitResult) { lock.withLock { result = value } }
    func get() -> Futex.WaitResult? { lock.withLock { result } }
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
