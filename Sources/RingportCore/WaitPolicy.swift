/// What a side that finds nothing to do does until work comes: the protocol in its waits, the miniport's
/// data thread between passes.
public enum WaitPolicy: String, Sendable, CaseIterable {
    /// Never sleeps: spins until work comes. For a side that has a core of its own.
    case busyPoll
    /// Spins for a short, learned time, gives the CPU away while a peer may need it, then sleeps. Right on
    /// any number of cores; the default.
    case adaptive
    /// Sleeps at once; batching amortizes the wake-ups. The least CPU, the most latency.
    case blocking

    /// `adaptive`.
    public static let `default` = WaitPolicy.adaptive
}
