import ArgumentParser
import Foundation
import Glibc
import Ringport
import RingportCore
import RingportSystem

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

            Exit status: 0 on success, 1 on a runtime failure (one line on stderr, say a miniport that is not \
            running or went away), 64 on a usage error, 130 after Ctrl-C (the summary is printed first).
            """,
        version: RingportVersion.string,
        subcommands: [Send.self, Recv.self, Ping.self, Stress.self, Stat.self, List.self, Bench.self, SocketSink.self]
    )

    /// Parses (a usage error exits 64, as the parser does), then runs: whatever `run()` throws is a runtime
    /// failure, reported as one line and exit 1, whichever subcommand threw it.
    static func main() {
        var command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            try command.run()
        } catch {
            // The parser's own commands (help, completion scripts) answer through errors of their own.
            guard command is any AdapterCommand || String(reflecting: type(of: command)).hasPrefix("ringport.") else {
                exit(withError: error)
            }
            exit(withError: RuntimeFailure.report(error, socketPath: (command as? any AdapterCommand)?.socketPath))
        }
    }
}

/// Where the adapter is.
struct AdapterOptions: ParsableArguments {
    @Option(help: "Adapter name: 1 to 64 of A-Z a-z 0-9 . _ - (not starting with a dot).") var adapter = "ringport0"
    @Option(
        help:
            "When nothing has come: busyPoll (spins; needs a core of its own), adaptive (spins a learned while, then sleeps), blocking (sleeps at once)."
    )
    var wait: WaitPolicy = .default
    @Option(help: ArgumentHelp(runtimeDirectoryHelp, valueName: "path")) var dir: String?

    func validate() throws {
        try Self.check(adapter: adapter, directory: RuntimeDirectory(dir))
    }

    /// The checks the miniport applies to its adapter name and socket path, made before anything connects.
    static func check(adapter: String, directory: RuntimeDirectory) throws {
        guard RuntimeDirectory.isValidAdapterName(adapter) else {
            throw ValidationError(
                "--adapter \"\(adapter)\": 1 to 64 of A-Z a-z 0-9 . _ - (not starting with a dot)")
        }
        let path = directory.socketPath(adapter: adapter)
        guard path.utf8.count <= maximumSocketPathBytes else {
            throw ValidationError(
                "--dir: the socket path \(path) is \(path.utf8.count) bytes, at most \(maximumSocketPathBytes) fit "
                    + "a Unix socket address (use a shorter --dir or --adapter)")
        }
    }

    var socketPath: String { RuntimeDirectory(dir).socketPath(adapter: adapter) }
}

/// The longest path a Unix socket address holds (`sun_path` less its terminating zero).
let maximumSocketPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

/// The `--dir` help, the same in both tools.
let runtimeDirectoryHelp =
    "Runtime directory of the miniport's socket (default: $RINGPORT_DIR, else /run/ringport for root, else $XDG_RUNTIME_DIR/ringport, or /tmp/ringport-<uid> without XDG_RUNTIME_DIR)."

extension WaitPolicy: ExpressibleByArgument {}

/// A subcommand that talks to one adapter: its socket path names the miniport in a failure's message.
protocol AdapterCommand {
    var where_: AdapterOptions { get }
}

extension AdapterCommand {
    var socketPath: String { where_.socketPath }
}

extension Send: AdapterCommand {}
extension Recv: AdapterCommand {}
extension Ping: AdapterCommand {}
extension Stress: AdapterCommand {}
extension Stat: AdapterCommand {}
extension Bench: AdapterCommand {}

/// A runtime failure (not a usage error): printed as one line, exit status 1.
struct RuntimeFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }

    /// Prints `error` as one line on stderr and answers the exit status: ExitCode and CleanExit pass through.
    static func report(_ error: any Error, socketPath: String?) -> any Error {
        if error is ExitCode || error is CleanExit { return error }
        standardError("ringport: " + message(for: error, socketPath: socketPath))
        return ExitCode(1)
    }

    /// One line for `error`, naming the miniport's socket when the connection is what failed.
    static func message(for error: any Error, socketPath: String?) -> String {
        switch error {
        case let error as AdapterError:
            switch error {
            case .adapterNotFound(_, let path):
                return notRunning(path, errno: nil)
            case .openFailed(let why):
                if let socketPath, isPermissionDenied(socketPath) || why.contains("(errno 13)") {
                    return permissionDenied(socketPath)
                }
                return error.description
            default:
                return error.description
            }
        case let error as SystemError:
            if error.call.hasPrefix("connect(") {
                let path = String(error.call.dropFirst("connect(".count).dropLast())
                switch error.errno.rawValue {
                case ENOENT, ECONNREFUSED: return notRunning(path, errno: error.errno.rawValue)
                case EACCES: return permissionDenied(path)
                default: break
                }
            }
            return error.description
        case let error as RuntimeDirectory.Failure:
            return "runtime directory: \(error)"
        case let error as ValidationError:
            // Thrown while running, not while parsing: a runtime failure that was spelled as a usage error.
            return error.message
        default:
            return String(describing: error).split(separator: "\n").joined(separator: "; ")
        }
    }

    /// `errno`: the connect's, when known; else what the socket file says (there, nobody listens).
    static func notRunning(_ path: String, errno: Int32?) -> String {
        var info = stat()
        let reason = errno ?? (lstat(path, &info) == 0 ? ECONNREFUSED : ENOENT)
        return "the miniport at \(path) is not running (connect: \(String(cString: strerror(reason))))"
    }

    static func permissionDenied(_ path: String) -> String {
        "permission denied on the miniport's socket \(path) (connect: Permission denied); its owner can let other "
            + "users bind by starting ringportd with --group NAME (members of NAME) or --socket-mode 666 (everyone)"
    }

    /// Whether this user may not reach the socket at `path` (its mode, or a directory on the way).
    static func isPermissionDenied(_ path: String) -> Bool {
        access(path, W_OK) != 0 && errno == EACCES
    }
}
