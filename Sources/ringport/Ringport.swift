import ArgumentParser
import RingportCore

@main
struct RingportTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringport",
        abstract: "Talk to a Ringport adapter from the command line.",
        discussion: """
            Examples (with `ringportd` running):
              ringport send hello world
              ringport recv --print
              ringport ping --count 5          (ringportd --driver loopback)
              ringport stress --packets 100000
              ringport stat
            """,
        subcommands: [Send.self, Recv.self, Ping.self, Stress.self, Stat.self, Bench.self, SocketSink.self]
    )
}

/// Where the adapter is.
struct AdapterOptions: ParsableArguments {
    @Option(help: "Adapter name.") var adapter = "ringport0"
    @Option(
        help:
            "When nothing has come: busyPoll (spins; needs a core of its own), adaptive (spins a learned while, then sleeps), blocking (sleeps at once)."
    )
    var wait: WaitPolicy = .default
    @Option(help: "Runtime directory of the miniport (default: $RINGPORT_DIR, else /run/ringport for root).")
    var dir: String?
}

extension WaitPolicy: ExpressibleByArgument {}
