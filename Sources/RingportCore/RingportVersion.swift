/// The version of Ringport: the library, the miniport SDK and the command-line tools (`--version`) share it.
public enum RingportVersion {
    /// The release, as semantic versioning spells it.
    public static let string = "0.7.0"
}
