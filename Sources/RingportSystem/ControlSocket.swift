import Glibc
package import RingportCore
import _RingportShim

/// A Unix `SOCK_SEQPACKET` socket of the control plane: one message per request, descriptors alongside.
/// Non-copyable: it closes its descriptor when it goes away.
package struct ControlSocket: ~Copyable {
    package let descriptor: CInt

    deinit { close(descriptor) }

    /// Binds and listens at `path` (an existing socket file must have been removed), with `mode`; `backlog`
    /// connections may wait to be accepted.
    package static func listen(path: String, mode: mode_t, backlog: CInt = SOMAXCONN) throws(SystemError)
        -> ControlSocket
    {
        let socket = try make()
        var address = try unixAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket.descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else { throw .fromErrno("bind(\(path))") }
        guard chmod(path, mode) == 0 else { throw .fromErrno("chmod(\(path))") }
        guard Glibc.listen(socket.descriptor, backlog) == 0 else { throw .fromErrno("listen(\(path))") }
        return socket
    }

    /// Connects to the listening socket at `path`.
    package static func connect(path: String) throws(SystemError) -> ControlSocket {
        let socket = try make()
        var address = try unixAddress(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket.descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else { throw .fromErrno("connect(\(path))") }
        return socket
    }

    /// Connects within `timeout` seconds, or throws `ETIMEDOUT`: a listener whose backlog is full (a wedged
    /// miniport) makes a blocking connect wait for good. The socket is blocking again when this returns.
    package static func connect(path: String, timeout: Double) throws(SystemError) -> ControlSocket {
        let socket = try make()
        var address = try unixAddress(path)
        try socket.setNonBlocking()
        let deadline = ProcessControl.monotonicNanoseconds() &+ UInt64(max(0, timeout) * 1e9)
        var pause: UInt32 = 200
        while true {
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(socket.descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if connected == 0 { break }
            let error = errno
            let now = ProcessControl.monotonicNanoseconds()
            let remaining = deadline > now ? deadline - now : 0
            if error == EINTR { continue }
            if error == EINPROGRESS {
                // Not what a Unix socket does today, but the portable form: wait for writability, then ask.
                var entry = pollfd(fd: socket.descriptor, events: Int16(POLLOUT), revents: 0)
                let ready = poll(&entry, 1, Int32(clamping: (remaining + 999_999) / 1_000_000))
                guard ready > 0 else { throw SystemError("connect(\(path))", .timedOut) }
                var failure: CInt = 0
                var size = socklen_t(MemoryLayout<CInt>.size)
                _ = getsockopt(socket.descriptor, SOL_SOCKET, SO_ERROR, &failure, &size)
                guard failure == 0 else { throw SystemError("connect(\(path))", .init(rawValue: failure)) }
                break
            }
            // EAGAIN: the listener's backlog is full. Unix sockets offer nothing to poll for: retry, backing off.
            guard error == EAGAIN else { throw SystemError("connect(\(path))", .init(rawValue: error)) }
            guard remaining > 0 else { throw SystemError("connect(\(path))", .timedOut) }
            usleep(UInt32(min(UInt64(pause), remaining / 1000 + 1)))
            pause = min(pause * 2, 20_000)
        }
        let flags = fcntl(socket.descriptor, F_GETFL)
        guard flags >= 0, fcntl(socket.descriptor, F_SETFL, flags & ~O_NONBLOCK) == 0 else {
            throw .fromErrno("fcntl(~O_NONBLOCK)")
        }
        return socket
    }

    /// The peer's process and user, from the kernel (SO_PEERCRED), never from what the peer says.
    package func peerCredentials() throws(SystemError) -> (processID: Int32, userID: UInt32) {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        let result = rp_peer_credentials(descriptor, &pid, &uid)
        guard result == 0 else { throw SystemError("getsockopt(SO_PEERCRED)", .init(rawValue: result)) }
        return (pid, uid)
    }

    static func make() throws(SystemError) -> ControlSocket {
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .fromErrno("socket(AF_UNIX, SOCK_SEQPACKET)") }
        return ControlSocket(descriptor: fd)
    }

    static func unixAddress(_ path: String) throws(SystemError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SystemError("socket path \(path)", .fileNameTooLong)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    /// Accepts a connection (nil if none is pending on a non-blocking socket).
    package func accept() throws(SystemError) -> ControlSocket? {
        let fd = rp_accept(descriptor)
        if fd < 0 {
            if errno == EAGAIN || errno == EINTR || errno == ECONNABORTED { return nil }
            throw .fromErrno("accept")
        }
        return ControlSocket(descriptor: fd)
    }

    /// What a non-blocking `trySend` did.
    package enum SendResult: Equatable, Sendable {
        case sent
        /// The socket's buffer is full: try again once it is writable.
        case wouldBlock
        case failed(errno: CInt)
    }

    /// Sends one encoded message (with `passing`, a descriptor, if given) without ever waiting.
    package func trySend(_ bytes: [UInt8], passing fd: CInt = -1) -> SendResult {
        let sent = bytes.withUnsafeBytes {
            rp_send_with_fds(descriptor, $0.baseAddress, $0.count, [fd], fd >= 0 ? 1 : 0, 1, Int32(MSG_DONTWAIT))
        }
        if sent == bytes.count { return .sent }
        if sent == -Int(EAGAIN) { return .wouldBlock }
        return .failed(errno: sent < 0 ? CInt(-sent) : EMSGSIZE)
    }

    /// Sends raw bytes with `descriptors`, `perControlMessage` of them in each SCM_RIGHTS control message
    /// (tests: what a hostile client can send).
    package func sendRaw(_ bytes: [UInt8], passing descriptors: [CInt], perControlMessage: Int = 1)
        throws(SystemError)
    {
        let sent = bytes.withUnsafeBytes {
            rp_send_with_fds(
                descriptor, $0.baseAddress, $0.count, descriptors, UInt32(descriptors.count),
                UInt32(max(1, perControlMessage)), 0)
        }
        guard sent == bytes.count else {
            throw SystemError("sendmsg", .init(rawValue: sent < 0 ? CInt(-sent) : EMSGSIZE))
        }
    }

    /// Sends one message, with `passing` (a descriptor) if given.
    package func send(_ message: ControlMessage, passing fd: CInt = -1) throws(SystemError) {
        let bytes = message.encoded()
        let sent = bytes.withUnsafeBytes { rp_send_with_fd(descriptor, $0.baseAddress, $0.count, fd) }
        guard sent == bytes.count else {
            throw SystemError("sendmsg", .init(rawValue: sent < 0 ? CInt(-sent) : EMSGSIZE))
        }
    }

    /// What `receive` got.
    package enum Received: ~Copyable {
        case message(ControlMessage, descriptor: CInt)
        /// The peer closed its end (or died).
        case closed
        /// A message that does not decode; any descriptor with it was closed.
        case malformed
        /// Nothing yet (non-blocking only).
        case nothing
    }

    /// Receives one message. A descriptor that came with it is the caller's to close.
    package func receive(nonBlocking: Bool = false) throws(SystemError) -> Received {
        var buffer = [UInt8](repeating: 0, count: ControlMessage.maximumSize)
        var fd: CInt = -1
        let count = buffer.withUnsafeMutableBytes {
            rp_recv_with_fd(descriptor, $0.baseAddress, $0.count, &fd, nonBlocking ? Int32(MSG_DONTWAIT) : 0)
        }
        if count == 0 { return .closed }
        if count < 0 {
            if nonBlocking && (count == -Int(EAGAIN)) { return .nothing }
            if count == -Int(ECONNRESET) { return .closed }
            if count == -Int(EMSGSIZE) { return .malformed }
            throw SystemError("recvmsg", .init(rawValue: CInt(-count)))
        }
        guard let message = ControlMessage.decode(Array(buffer[0..<count])) else {
            if fd >= 0 { close(fd) }
            return .malformed
        }
        return .message(message, descriptor: fd)
    }

    /// Whether a `receive` would return at once (a message, or the peer's close), waiting up to `milliseconds`.
    /// A signal does not cut the wait short: `poll` is resumed with the time left.
    package func isReadable(waitingMilliseconds milliseconds: Int32 = 0) -> Bool {
        let deadline = ProcessControl.monotonicNanoseconds() + UInt64(max(0, milliseconds)) * 1_000_000
        var wait = milliseconds
        while true {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, wait)
            if ready >= 0 || errno != EINTR { return ready > 0 }
            let now = ProcessControl.monotonicNanoseconds()
            guard now < deadline else { return false }
            wait = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
        }
    }

    /// Sets `O_NONBLOCK`.
    package func setNonBlocking() throws(SystemError) {
        let flags = fcntl(descriptor, F_GETFL)
        guard flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw .fromErrno("fcntl(O_NONBLOCK)")
        }
    }
}
