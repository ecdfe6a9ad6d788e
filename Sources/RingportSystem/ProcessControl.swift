import Glibc
import _RingportShim

/// Process-wide settings for helpers and benchmarks.
package enum ProcessControl {
    /// Makes the kernel SIGKILL this process when its parent dies (`PR_SET_PDEATHSIG`), so a spawned peer
    /// never outlives the test or benchmark that started it. Fails if the parent is already gone.
    package static func dieWithParent(expectedParent: pid_t) throws(SystemError) {
        let error = rp_die_with_parent(expectedParent)
        if error != 0 { throw SystemError("prctl(PR_SET_PDEATHSIG)", .init(rawValue: error)) }
    }

    /// Makes the kernel SIGKILL this process when its parent dies (`PR_SET_PDEATHSIG`), for wrappers that
    /// exec (or fork) on their way to the process that matters: fails if `ancestor` is no longer among this
    /// process's ancestors once that is set (a process in between, or `ancestor`, died before).
    package static func dieWithAncestor(_ ancestor: pid_t) throws(SystemError) {
        let error = rp_die_with_ancestor(ancestor)
        if error != 0 { throw SystemError("prctl(PR_SET_PDEATHSIG) under \(ancestor)", .init(rawValue: error)) }
    }

    /// Replaces this process (`execv`) with the program at `CommandLine.arguments[first]`, given the
    /// arguments from there on. Returns only if the exec failed.
    package static func exec(commandLineFrom first: Int) -> SystemError {
        precondition(first > 0 && first < CommandLine.arguments.count, "no program to exec")
        let error = rp_exec_arguments(CommandLine.unsafeArgv, CInt(first))
        return SystemError("execv(\(CommandLine.arguments[first]))", .init(rawValue: error))
    }

    /// Pins the calling thread to one CPU (`sched_setaffinity`).
    package static func pin(toCPU cpu: Int) throws(SystemError) {
        let error = rp_pin_to_cpu(CInt(cpu))
        if error != 0 { throw SystemError("sched_setaffinity(cpu \(cpu))", .init(rawValue: error)) }
    }

    /// `CLOCK_MONOTONIC` in nanoseconds.
    @inlinable package static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// `PAUSE`, for spin loops.
    @inlinable package static func relax() { rp_cpu_relax() }
}
