import Glibc

/// A minimal HTTP/1.1 responder on a loopback TCP address, for a metrics scrape: reads one request per
/// connection (bounded in size and time), answers it and closes. Every socket is non-blocking and served
/// from one `poll`. A client that never sends, or never reads, costs a slot until its deadline; when every
/// slot is taken, a new connection closes the oldest one that has not sent a whole request, so any number
/// of idle clients cannot keep a scrape out. Served by one thread (the one in `serve`).
package final class LoopbackHTTPServer: @unchecked Sendable {
    /// The listening socket.
    let listener: CInt
    /// The port bound (the one asked for, or the kernel's choice for 0).
    package let port: UInt16

    /// Most bytes of a request (its line and headers); a longer one is answered 431 and closed.
    static let requestLimit = 8192
    /// Most connections served at once; beyond, each new one takes the slot of the oldest that has not
    /// asked yet (or, if all have, of the oldest).
    static let connectionLimit = 32
    /// How long a connection may take to send its request and read the answer.
    static let deadlineNanoseconds: UInt64 = 2_000_000_000

    /// An answer: status, content type, headers of its own (say `Allow`), body.
    package struct Response: Sendable {
        package var status: Int
        package var contentType: String
        package var headers: [(name: String, value: String)]
        package var body: [UInt8]
        package init(status: Int, contentType: String, headers: [(name: String, value: String)] = [], body: [UInt8]) {
            self.status = status
            self.contentType = contentType
            self.headers = headers
            self.body = body
        }
    }

    /// Whether `host` is a loopback address this server binds: 127.0.0.0/8 or ::1.
    package static func isLoopback(_ host: String) -> Bool {
        if host == "::1" || host == "[::1]" { return true }
        var address = in_addr()
        guard inet_pton(AF_INET, host, &address) == 1 else { return false }
        return UInt32(bigEndian: address.s_addr) >> 24 == 127
    }

    /// Parses `HOST:PORT` (`[::1]:PORT` for IPv6); nil if either part is malformed.
    package static func parse(_ text: String) -> (host: String, port: UInt16)? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }

    /// A TCP socket (close-on-exec) of `host`'s family and its address with `port`: IPv6 if `host` has a
    /// colon, else IPv4; `host` must be numeric.
    static func socketAddress(host: String, port: UInt16) throws(SystemError)
        -> (fd: CInt, address: sockaddr_storage, length: socklen_t)
    {
        var storage = sockaddr_storage()
        let six = host.contains(":")
        let parsed = withUnsafeMutableBytes(of: &storage) { raw -> Bool in
            if six {
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_port = port.bigEndian
                guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { return false }
                raw.storeBytes(of: address, as: sockaddr_in6.self)
            } else {
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = port.bigEndian
                guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return false }
                raw.storeBytes(of: address, as: sockaddr_in.self)
            }
            return true
        }
        guard parsed else { throw SystemError("inet_pton(\(host))", .invalidArgument) }
        let fd = socket(six ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .fromErrno("socket") }
        let length = socklen_t(six ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        return (fd, storage, length)
    }

    /// Binds and listens on `host` (a numeric loopback address) and `port` (0: any free one).
    package init(host: String, port: UInt16) throws(SystemError) {
        let (fd, storage, length) = try Self.socketAddress(host: host, port: port)
        var address = storage
        var one: CInt = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            let error = SystemError.fromErrno("bind(\(host):\(port))")
            Glibc.close(fd)
            throw error
        }
        guard listen(fd, 64) == 0, fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 else {
            let error = SystemError.fromErrno("listen(\(host):\(port))")
            Glibc.close(fd)
            throw error
        }
        // The port the kernel chose (at the same offset in both families' addresses).
        var boundLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &boundLength) }
        }
        let netPort = withUnsafeBytes(of: address) { raw in raw.load(fromByteOffset: 2, as: UInt16.self) }
        listener = fd
        self.port = UInt16(bigEndian: netPort)
    }

    deinit { Glibc.close(listener) }

    final class Client {
        let fd: CInt
        let deadline: UInt64
        var request: [UInt8] = []
        var output: [UInt8] = []
        var written = 0
        var answered = false
        init(fd: CInt, deadline: UInt64) {
            self.fd = fd
            self.deadline = deadline
        }
    }

    /// Serves until `stop()` is true (looked at every 100 ms): each request line goes to `respond` with its
    /// method and path.
    package func serve(until stop: () -> Bool, _ respond: (_ method: String, _ path: String) -> Response) {
        var clients: [Client] = []
        var entries: [pollfd] = []
        defer { for client in clients { Glibc.close(client.fd) } }
        while !stop() {
            entries.removeAll(keepingCapacity: true)
            entries.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
            for client in clients {
                entries.append(pollfd(fd: client.fd, events: Int16(client.answered ? POLLOUT : POLLIN), revents: 0))
            }
            _ = poll(&entries, nfds_t(entries.count), 100)
            let now = ProcessControl.monotonicNanoseconds()
            for (i, client) in clients.enumerated() where entries[i + 1].revents != 0 {
                if client.answered { write(client) } else { read(client, respond) }
            }
            // Done, failed or out of time: closed.
            clients.removeAll { client in
                let finished = client.answered && client.written == client.output.count
                guard finished || client.written < 0 || now > client.deadline else { return false }
                Glibc.close(client.fd)
                return true
            }
            if entries[0].revents != 0 { accept(into: &clients, now: now, respond) }
        }
    }

    /// Takes every pending connection. At the limit one is closed for it (`victim`): idle clients then only
    /// ever take one another's slots. A request already sent is read at once.
    func accept(into clients: inout [Client], now: UInt64, _ respond: (String, String) -> Response) {
        while true {
            let fd = Glibc.accept(listener, nil, nil)
            guard fd >= 0 else { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if clients.count >= Self.connectionLimit {
                let victim = victim(clients, respond)
                Glibc.close(clients[victim].fd)
                clients.remove(at: victim)
            }
            let client = Client(fd: fd, deadline: now &+ Self.deadlineNanoseconds)
            clients.append(client)
            read(client, respond)
        }
    }

    /// The connection to close for a new one: one already gone; else the oldest that has still not sent a
    /// whole request (each read first: its request may have come since the last `poll`); else the oldest.
    func victim(_ clients: [Client], _ respond: (String, String) -> Response) -> Int {
        if let gone = clients.firstIndex(where: { $0.written < 0 }) { return gone }
        for (index, client) in clients.enumerated() where !client.answered {
            read(client, respond)
            if !client.answered || client.written < 0 { return index }
        }
        return 0
    }

    func read(_ client: Client, _ respond: (String, String) -> Response) {
        var buffer = [UInt8](repeating: 0, count: 2048)
        let count = recv(client.fd, &buffer, buffer.count, 0)
        if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
            client.written = -1  // gone before asking: closed
            return
        }
        guard count > 0 else { return }
        client.request += buffer[..<count]
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        let headerEnd = Self.find(end, in: client.request)
        guard headerEnd != nil || client.request.count > Self.requestLimit else { return }
        let response: Response
        if headerEnd == nil {
            response = Response(status: 431, contentType: "text/plain", body: Array("request too large\n".utf8))
        } else {
            let line = client.request.prefix { $0 != UInt8(ascii: "\r") }
            let parts = String(decoding: line, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
            if parts.count == 3, parts[2].hasPrefix("HTTP/1.") {
                var answer = respond(String(parts[0]), String(parts[1]))
                // A HEAD answer has no body.
                if parts[0] == "HEAD" { answer.body = [] }
                response = answer
            } else {
                response = Response(status: 400, contentType: "text/plain", body: Array("bad request\n".utf8))
            }
        }
        client.output = Self.encode(response)
        client.answered = true
        write(client)
    }

    func write(_ client: Client) {
        while client.written >= 0 && client.written < client.output.count {
            let count = client.output.withUnsafeBytes { bytes in
                send(client.fd, bytes.baseAddress! + client.written, bytes.count - client.written, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                client.written += count
            } else if count < 0 && (errno == EAGAIN || errno == EINTR) {
                return
            } else {
                client.written = -1
            }
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count)
        where haystack[start..<start + needle.count].elementsEqual(needle) {
            return start
        }
        return nil
    }

    static func encode(_ response: Response) -> [UInt8] {
        let reason =
            switch response.status {
            case 200: "OK"
            case 400: "Bad Request"
            case 404: "Not Found"
            case 405: "Method Not Allowed"
            case 431: "Request Header Fields Too Large"
            default: "Error"
            }
        let headers = response.headers.map { "\($0.name): \($0.value)\r\n" }.joined()
        let head =
            "HTTP/1.1 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\n" + headers
            + "Content-Length: \(response.body.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + response.body
    }
}

/// The other end, for tests and tools: one request over a fresh TCP connection to a loopback address.
package enum LoopbackHTTPClient {
    /// Connects to `host:port` (numeric IPv4 or IPv6), waiting at most `timeoutSeconds` for the connection
    /// and then for each send and receive; the descriptor is the caller's to close.
    package static func connect(host: String, port: UInt16, timeoutSeconds: Double = 5) throws(SystemError) -> CInt {
        let (fd, storage, length) = try LoopbackHTTPServer.socketAddress(host: host, port: port)
        var address = storage
        // On Linux the send timeout also bounds `connect`.
        var timeout = timeval(
            tv_sec: Int(timeoutSeconds), tv_usec: Int((timeoutSeconds.truncatingRemainder(dividingBy: 1)) * 1e6))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        guard result == 0 else {
            let error = SystemError.fromErrno("connect(\(host):\(port))")
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    package static func close(_ fd: CInt) { Glibc.close(fd) }

    /// Sends `request` and reads until the server closes, for at most `timeoutSeconds` (then throws).
    package static func exchange(host: String, port: UInt16, request: String, timeoutSeconds: Double = 5)
        throws(SystemError) -> String
    {
        let fd = try connect(host: host, port: port, timeoutSeconds: timeoutSeconds)
        defer { Glibc.close(fd) }
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            throw .fromErrno("send")
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count == 0 { break }
            guard count > 0 else { throw .fromErrno("recv") }
            answer += buffer[..<count]
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
