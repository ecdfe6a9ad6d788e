import Glibc

extension RuntimeDirectory {
    /// What is at the directory's path.
    package enum Presence: Sendable {
        case directory, missing, notADirectory
    }

    /// Whether the path is a directory, is missing, or is something else (`stat(2)`).
    package func presence() throws(SystemError) -> Presence {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let error = SystemError.fromErrno("stat(\(path))")
            guard error.errno == .noSuchFileOrDirectory else { throw error }
            return .missing
        }
        return info.st_mode & S_IFMT == S_IFDIR ? .directory : .notADirectory
    }

    /// The adapters whose sockets are in the directory (`<name>.sock` with a valid name), sorted.
    package func adapterNames() throws(SystemError) -> [String] {
        guard let handle = opendir(path) else { throw SystemError.fromErrno("opendir(\(path))") }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasSuffix(".sock") else { continue }
            let adapter = String(name.dropLast(".sock".count))
            if Self.isValidAdapterName(adapter) { names.append(adapter) }
        }
        return names.sorted()
    }
}
