import Glibc
import Synchronization

/// The signal that asked the process to stop, 0 while none has. A global the handler only stores to.
private let caughtSignal = Atomic<Int32>(0)

/// The thread that installed the handler (the tool's main thread, the one that sleeps in the loops).
private let mainThread = Atomic<UInt>(0)

/// The handler: atomic loads and stores and `pthread_kill`, all async-signal-safe (no allocation, no lock).
/// The kernel may deliver a process's signal to any thread (the library's hang-up watcher, say); it is sent on
/// to the main thread, so that the main thread's sleep is cut short by it (the futex wait returns `EINTR`).
private func recordSignal(_ signal: Int32) {
    caughtSignal.store(signal, ordering: .relaxed)
    let main = pthread_t(mainThread.load(ordering: .relaxed))
    if main != 0 && pthread_equal(pthread_self(), main) == 0 { _ = pthread_kill(main, signal) }
}

/// Ctrl-C (SIGINT) and friends as a flag that a tool's loops check, so they can end the way a normal end does
/// (print the summary) rather than die mid-line.
///
/// The handler is installed without `SA_RESTART`, so the signal ends the main thread's sleep; the library's
/// waits return when the flag is set. A signal that lands between a wait's last check and its sleep is seen
/// at the next wake (a second Ctrl-C, say): loops that must end promptly also bound their waits.
package enum Interruption {
    /// Installs the handler for `signals`. Call once, early, before the loops that check `signal`.
    package static func install(_ signals: [Int32] = [SIGINT]) {
        // Touch the globals first: their lazy initialization must not run inside the handler.
        _ = caughtSignal.load(ordering: .relaxed)
        mainThread.store(UInt(pthread_self()), ordering: .relaxed)
        for number in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = recordSignal
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            _ = sigaction(number, &action, nil)
        }
    }

    /// The signal that arrived (SIGINT, say), or nil while none has.
    @inline(__always) package static var signal: Int32? {
        let number = caughtSignal.load(ordering: .relaxed)
        return number == 0 ? nil : number
    }

    /// Whether a signal asked the process to stop.
    @inline(__always) package static var isRequested: Bool { caughtSignal.load(ordering: .relaxed) != 0 }

    /// The exit status a shell gives a process killed by `signal`: 128 + its number (130 for SIGINT).
    package static func exitStatus(for signal: Int32) -> Int32 { 128 + signal }
}
