import ArgumentParser
import RingportCore
import RingportSystem

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the adapter's statistics.")

    @OptionGroup var where_: AdapterOptions

    /// The adapter's statistics, asked over a control connection of its own.
    static func query(_ where_: AdapterOptions) throws -> AdapterStatistics {
        let directory = RuntimeDirectory(where_.dir)
        try directory.checkForClient()
        let socket = try ControlSocket.connect(path: directory.socketPath(adapter: where_.adapter), timeout: 5)
        try socket.send(.queryStatistics)
        guard socket.isReadable(waitingMilliseconds: 5000), case .message(.statistics(let s), _) = try socket.receive()
        else { throw ValidationError("no statistics from the miniport") }
        return s
    }

    func run() throws {
        let s = try Self.query(where_)
        print(
            "bindings=\(s.bindings) opened=\(s.bindingsOpened) reclaimed=\(s.bindingsReclaimed) "
                + "packets=\(s.packetsSent) bytes=\(s.bytesSent) failed=\(s.packetsFailed) "
                + "outstanding=\(s.packetsOutstanding) received=\(s.packetsReceived) dropped=\(s.packetsDropped) "
                + "verification_errors=\(s.verificationErrors) refused_completions=\(s.completionsRefused) "
                + "violations=\(s.bindingsViolated) stalled=\(s.receiversStalled) "
                + "connections_refused=\(s.connectionsRefused) "
                + "connections_dropped=\(s.connectionsDropped) opens_over_limit=\(s.opensOverLimit)"
        )
    }
}
