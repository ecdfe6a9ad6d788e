import CRingportShim
import Glibc

/// Process-wide settings for helpers and benchmarks.
public enum ProcessControl {
    /// Makes the kernel SIGKILL this process when its parent dies (`PR_SET_PDEATHSIG`), so a spawned peer
    /// never outlives the test or benchmark that started it. Fails if the parent is already gone.
    public static func dieWithParent(expectedParent: pid_t) throws(SystemError) {
        let error = rp_die_with_parent(expectedParent)
        if error != 0 { throw SystemError("prctl(PR_SET_PDEATHSIG)", .init(rawValue: error)) }
    }

    /// Pins the calling thread to one CPU (`sched_setaffinity`).
    public static func pin(toCPU cpu: Int) throws(SystemError) {
        let error = rp_pin_to_cpu(CInt(cpu))
        if error != 0 { throw SystemError("sched_setaffinity(cpu \(cpu))", .init(rawValue: error)) }
    }

    /// `CLOCK_MONOTONIC` in nanoseconds.
    @inlinable public static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// `PAUSE`, for spin loops.
    @inlinable public static func relax() { rp_cpu_relax() }
}
