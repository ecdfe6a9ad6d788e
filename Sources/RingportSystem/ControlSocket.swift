import CRingportShim
import Glibc
public import RingportCore

/// A Unix `SOCK_SEQPACKET` socket of the control plane: one message per request, descriptors alongside.
/// Non-copyable: it closes its descriptor when it goes away.
public struct ControlSocket: ~Copyable {
    public let descriptor: CInt

    deinit { close(descriptor) }

    /// Binds and listens at `path` (an existing socket file must have been removed), with `mode`.
    public static func listen(path: String, mode: mode_t) throws(SystemError) -> ControlSocket {
        let socket = try make()
        var address = try unixAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket.descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else { throw .fromErrno("bind(\(path))") }
        guard chmod(path, mode) == 0 else { throw .fromErrno("chmod(\(path))") }
        guard Glibc.listen(socket.descriptor, 64) == 0 else { throw .fromErrno("listen(\(path))") }
        return socket
    }

    /// Connects to the listening socket at `path`.
    public static func connect(path: String) throws(SystemError) -> ControlSocket {
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
    public func accept() throws(SystemError) -> ControlSocket? {
        let fd = rp_accept(descriptor)
        if fd < 0 {
            if errno == EAGAIN || errno == EINTR || errno == ECONNABORTED { return nil }
            throw .fromErrno("accept")
        }
        return ControlSocket(descriptor: fd)
    }

    /// Sends one message, with `passing` (a descriptor) if given.
    public func send(_ message: ControlMessage, passing fd: CInt = -1) throws(SystemError) {
        let bytes = message.encoded()
        let sent = bytes.withUnsafeBytes { rp_send_with_fd(descriptor, $0.baseAddress, $0.count, fd) }
        guard sent == bytes.count else {
            throw SystemError("sendmsg", .init(rawValue: sent < 0 ? CInt(-sent) : EMSGSIZE))
        }
    }

    /// What `receive` got.
    public enum Received: ~Copyable {
        case message(ControlMessage, descriptor: CInt)
        /// The peer closed its end (or died).
        case closed
        /// A message that does not decode; any descriptor with it was closed.
        case malformed
        /// Nothing yet (non-blocking only).
        case nothing
    }

    /// Receives one message. A descriptor that came with it is the caller's to close.
    public func receive(nonBlocking: Bool = false) throws(SystemError) -> Received {
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
    public func isReadable(waitingMilliseconds milliseconds: Int32 = 0) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, milliseconds) > 0
    }

    /// Sets `O_NONBLOCK`.
    public func setNonBlocking() throws(SystemError) {
        let flags = fcntl(descriptor, F_GETFL)
        guard flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw .fromErrno("fcntl(O_NONBLOCK)")
        }
    }
}
