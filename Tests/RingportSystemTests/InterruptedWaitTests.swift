import Foundation
import Glibc
import RingportSystem
import Testing

/// A signal with a handler (an application's timer, libFuzzer's SIGALRM) must not cut a control-socket wait
/// short: `Adapter.open` would report a miniport that "did not answer" at once and leave its request queued.
@Suite struct InterruptedWaitTests {
    @Test func aSignalDuringAWaitForTheMiniportsAnswerDoesNotEndIt() throws {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: poll returns EINTR
        var previous = sigaction()
        sigaction(SIGUSR2, &action, &previous)
        defer { sigaction(SIGUSR2, &previous, nil) }
        let path = "/tmp/ringport-eintr-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        unlink(path)
        defer { unlink(path) }
        let listener = try ControlSocket.listen(path: path, mode: 0o600)
        let client = try ControlSocket.connect(path: path)
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGUSR2)
        var mask = sigset_t()
        pthread_sigmask(SIG_UNBLOCK, &unblock, &mask)
        defer { pthread_sigmask(SIG_SETMASK, &mask, nil) }
        let waiter = pthread_self()
        let interrupter = Thread {
            usleep(50_000)
            pthread_kill(waiter, SIGUSR2)
        }
        interrupter.start()
        let start = Date()
        let readable = client.isReadable(waitingMilliseconds: 400)
        let waited = Date().timeIntervalSince(start)
        #expect(!readable)
        #expect(waited >= 0.35, "the wait ended after \(waited) s")
        _ = listener.descriptor
    }
}
