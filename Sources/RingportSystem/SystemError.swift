import Glibc
public import SystemPackage

/// A failed system call: which call, on what, and the errno it set.
public struct SystemError: Error, Hashable, Sendable, CustomStringConvertible {
    public let call: String
    public let errno: Errno

    public init(_ call: String, _ errno: Errno) {
        self.call = call
        self.errno = errno
    }

    /// Builds the error from the thread's `errno`, read at once after the failed call.
    @inline(never)
    public static func fromErrno(_ call: String) -> SystemError {
        SystemError(call, Errno(rawValue: Glibc.errno))
    }

    public var description: String { "\(call): \(errno) (errno \(errno.rawValue))" }
}

/// Retries `body` while it fails with EINTR; any other failure is thrown as a `SystemError`.
/// `body` returns -1 on failure with errno set, as C calls do.
public func retryingOnInterrupt<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> T)
    throws(SystemError) -> T
{
    while true {
        let result = body()
        if result != -1 { return result }
        if Glibc.errno == EINTR { continue }
        throw SystemError.fromErrno(call())
    }
}
