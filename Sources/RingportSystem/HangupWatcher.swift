import Glibc
package import RingportCore
import Synchronization
import _RingportShim

/// Wakes a sleeping protocol when the other end of its control socket closes. The kernel closes a process's
/// sockets however it ends (exit, crash, `kill -9`, OOM), so a sleeper needs no timer to notice that its
/// miniport is gone: one thread per process waits in `epoll_wait` for every binding's hang-up and, when
/// one comes, marks it and wakes the binding's wake word as any waker does. It uses no CPU until then.
///
/// Chosen over a robust futex: the kernel walks a robust list through memory the list's owner can write,
/// and every binding's segment is writable by its protocol, so one hostile protocol could unlink the entries
/// of every other binding and keep them from hearing of the miniport's death.
package final class HangupWatcher: Sendable {
    /// A binding's hang-up: set once the socket's peer has gone.
    package final class Flag: Sendable {
        let value = Atomic<Bool>(false)
        package var isSet: Bool { value.load(ordering: .acquiring) }
    }

    struct Target: @unchecked Sendable {  // the word lives in the binding's mapping, alive while registered
        let word: SharedWord
        let flag: Flag
    }

    package static let shared = HangupWatcher()

    private let epoll: CInt
    /// Whether the watching thread runs: without it a watch would never fire.
    private let running = Atomic<Bool>(false)
    private let targets = Mutex<(next: UInt64, byID: [UInt64: Target])>((1, [:]))

    private init() {
        epoll = epoll_create1(CInt(EPOLL_CLOEXEC))
        guard epoll >= 0 else { return }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()  // the watcher lives as long as the process
        let started = pthread_create(
            &thread, nil,
            { context in
                Unmanaged<HangupWatcher>.fromOpaque(context!).takeUnretainedValue().run()
                return nil
            }, context)
        guard started == 0 else {
            Unmanaged.passUnretained(self).release()
            return
        }
        pthread_detach(thread)
        running.store(true, ordering: .releasing)
    }

    /// Watches `socket` for its peer's hang-up; then sets the returned flag and wakes `wake`. Nil when the
    /// watch could not be set up (no descriptor for epoll): the caller must then look at the socket itself.
    package func watch(socket: CInt, wake: WakeWords) -> (id: UInt64, flag: Flag)? {
        guard epoll >= 0, running.load(ordering: .acquiring) else { return nil }
        let flag = Flag()
        let id = targets.withLock { state -> UInt64 in
            let id = state.next
            state.next += 1
            state.byID[id] = Target(word: wake.word, flag: flag)
            return id
        }
        var event = epoll_event()
        event.events = EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue
        event.data.u64 = id
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, socket, &event) == 0 else {
            _ = targets.withLock { $0.byID.removeValue(forKey: id) }
            return nil
        }
        return (id, flag)
    }

    /// Stops watching; after it returns the watcher no longer touches the binding's wake word. Call it
    /// before the socket closes and the segment is unmapped.
    package func unwatch(_ id: UInt64, socket: CInt) {
        targets.withLock { (state: inout (next: UInt64, byID: [UInt64: Target])) in
            state.byID[id] = nil
            _ = epoll_ctl(epoll, EPOLL_CTL_DEL, socket, nil)
        }
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 16)
        while true {
            let count = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, 16, -1) }
            guard count > 0 else {
                if count < 0 && errno != EINTR {  // cannot happen with a valid epoll descriptor
                    running.store(false, ordering: .releasing)
                    return
                }
                continue
            }
            for event in events.prefix(Int(count)) {
                let id = event.data.u64
                targets.withLock { (state: inout (next: UInt64, byID: [UInt64: Target])) in
                    guard let target = state.byID.removeValue(forKey: id) else { return }
                    target.flag.value.store(true, ordering: .releasing)
                    target.word.add(1)
                    Futex.wake(target.word.futexAddress)
                }
            }
        }
    }
}
