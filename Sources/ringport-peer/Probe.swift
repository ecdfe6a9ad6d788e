import ArgumentParser
import RingportSystem

/// Opens a segment and reports what happened: lets tests try it as another user.
struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Try to open a segment; print `ok <size>` or the error (exit 1).",
        shouldDisplay: false
    )

    @Option(help: "Name of the shared-memory segment (/name).") var segment: String

    func run() throws {
        do {
            let mapped = try SharedSegment.open(name: segment)
            print("ok \(mapped.size)")
        } catch {
            print("error \(error)")
            throw ExitCode(1)
        }
    }
}
