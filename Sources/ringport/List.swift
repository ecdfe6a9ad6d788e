import ArgumentParser
import Foundation
import Glibc
import RingportCore
import RingportSystem

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the adapters served in a runtime directory.",
        discussion: """
            Every <adapter>.sock in the directory, with what answers there: the driver, the miniport's process \
            and its bindings; a socket no miniport listens on any more (one killed with -9) is reported as not \
            running.
            """
    )

    @Option(help: ArgumentHelp(runtimeDirectoryHelp, valueName: "path")) var dir: String?
    @Flag(help: "Print one JSON object: {\"directory\", \"adapters\": [...]} (Docs/stat-json.md).") var json = false

    struct Entry: Encodable {
        var adapter: String
        var socket: String
        /// "running", "not running", or why it could not be asked ("permission denied", ...).
        var status: String
        var driver: String?
        var miniportPid: UInt64?
        var bindings: UInt64?
    }

    struct Listing: Encodable {
        var directory: String
        var adapters: [Entry]
    }

    func run() throws {
        let directory = RuntimeDirectory(dir)
        let presence: RuntimeDirectory.Presence
        do {
            presence = try directory.presence()
        } catch {
            throw Self.unlisted(directory, errno: error.errno.rawValue)
        }
        switch presence {
        case .missing:
            if json {
                print(try StatJSON.line(Listing(directory: directory.path, adapters: [])))
            } else {
                print("no adapters: \(directory.path) does not exist (no miniport has run there)")
            }
            return
        case .notADirectory: throw RuntimeFailure("\(directory.path) is not a directory")
        case .directory: break
        }
        try directory.checkForClient()
        let names = try Self.socketNames(directory)
        let entries = names.map { Self.entry(directory, $0) }
        if json {
            print(try StatJSON.line(Listing(directory: directory.path, adapters: entries)))
            return
        }
        guard !entries.isEmpty else {
            print("no adapters in \(directory.path)")
            return
        }
        var rows = [["ADAPTER", "STATUS", "DRIVER", "PID", "BINDINGS", "SOCKET"]]
        for e in entries {
            rows.append([
                e.adapter, e.status, e.driver ?? "-", e.miniportPid.map(String.init) ?? "-",
                e.bindings.map(String.init) ?? "-", e.socket,
            ])
        }
        var widths = [Int](repeating: 0, count: rows[0].count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        for row in rows {
            print(
                row.enumerated().map { i, cell in
                    i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                }.joined(separator: "  "))
        }
    }

    /// The adapter names of the directory's sockets, sorted.
    static func socketNames(_ directory: RuntimeDirectory) throws -> [String] {
        do {
            return try directory.adapterNames()
        } catch {
            throw unlisted(directory, errno: error.errno.rawValue)
        }
    }

    /// A directory this user may not read (a world socket's 0711 lets others search it, not list it).
    static func unlisted(_ directory: RuntimeDirectory, errno code: Int32) -> RuntimeFailure {
        guard code == EACCES else {
            return RuntimeFailure("\(directory.path) cannot be listed: \(String(cString: strerror(code)))")
        }
        return RuntimeFailure(
            "\(directory.path) cannot be listed (permission denied: its owner lets others reach its adapters, "
                + "not list them); ask one by name: ringport stat --adapter NAME --dir \(directory.path)")
    }

    /// Asks the miniport at `adapter`'s socket what it serves (1 s at most).
    static func entry(_ directory: RuntimeDirectory, _ adapter: String) -> Entry {
        let path = directory.socketPath(adapter: adapter)
        var entry = Entry(adapter: adapter, socket: path, status: "running")
        do {
            let client = try StatClient(path: path, adapter: adapter, timeout: 1)
            let info = try client.info(timeoutMilliseconds: 1000)
            let statistics = try client.statistics(timeoutMilliseconds: 1000)
            entry.driver = info.driver
            entry.miniportPid = info.processID
            entry.bindings = statistics.bindings
        } catch let error as SystemError {
            switch error.errno {
            case .connectionRefused, .noSuchFileOrDirectory: entry.status = "not running (stale socket)"
            case .permissionDenied: entry.status = "permission denied"
            default: entry.status = "unreachable (\(error.errno))"
            }
        } catch {
            entry.status = "not answering (\(error))"
        }
        return entry
    }
}
