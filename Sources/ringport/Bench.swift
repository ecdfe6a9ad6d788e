import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure packets per second to the miniport.")
    func run() throws { throw ValidationError("not yet") }
}
