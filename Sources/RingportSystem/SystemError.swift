import Glibc
public import SystemPackage

/// A failed system call: which call, on what, and the errno it set.
public struct SystemError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The call that failed, with what it was called on (for example `connect(/run/ringport/ringport0.sock)`).
    public let call: String
    /// The `errno` it set.
    public let errno: Errno

    /// The failure of `call` with `errno`.
    public init(_ call: String, _ errno: Errno) {
        self.call = call
        self.errno = errno
    }

    /// Builds the error from the thread's `errno`, read at once after the failed call.
    @inline(never)
    public static func fromErrno(_ call: String) -> SystemError {
        SystemError(call, Errno(rawValue: Glibc.errno))
    }

    /// The call, the error's name and its number, on one line.
    public var description: String { "\(call): \(errno) (errno \(errno.rawValue))" }
}

/// Retries `body` while it fails with EINTR; any other failure is thrown as a `SystemError`.
/// `body` returns -1 on failure with errno set, as C calls do.
package func retryingOnInterrupt<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> T)
    throws(SystemError) -> T
{
    while true {
        let result = body()
        if result != -1 { return result }
        if Glibc.errno == EINTR { continue }
        throw SystemError.fromErrno(call())
    }
}
