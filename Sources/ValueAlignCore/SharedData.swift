import Foundation

/// The shared data sets could not be found, with every place that was looked in.
public struct SharedDataError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Where the project's openly licensed data sets live (FULCRA, SafeRLHF, HH pairs, profiles, ...):
/// read by path, never copied into the repository.
///
/// The root is `$VALUEALIGN_DATA` when it is set; otherwise `../shared/data` beside the repository,
/// found from the current directory (a clone run from its root, as `make` does) or from the
/// repository this code was built from (tests, and binaries run from elsewhere). A missing root or
/// file is an error that names both ways to provide it; it is never a silent skip.
public enum SharedData {
    /// The environment variable that names the data root.
    public static let environmentVariable = "VALUEALIGN_DATA"
    /// The root's place relative to the repository.
    public static let relativeRoot = "../shared/data"

    /// The data root, or an error naming every place looked in. `environment` defaults to the
    /// process's.
    public static func root(environment: [String: String]? = nil) throws(SharedDataError) -> String {
        let environment = environment ?? ProcessInfo.processInfo.environment
        if let given = environment[environmentVariable], !given.isEmpty {
            guard isDirectory(given) else {
                throw SharedDataError(message: "$\(environmentVariable) is '\(given)', which is not a folder; point it at the shared data folder (the one with fulcra/, saferlhf/, preferences/, profiles/)")
            }
            return given
        }
        let candidates = candidateRoots
        if let found = candidates.first(where: isDirectory) { return found }
        throw SharedDataError(message: "the shared data was not found: set $\(environmentVariable) to its folder, or put it at \(relativeRoot) beside the repository (looked in \(candidates.joined(separator: ", ")))")
    }

    /// `relative` (e.g. "fulcra/trustworthy.jsonl") under the data root; an error if the root or
    /// the file is missing.
    public static func file(_ relative: String, environment: [String: String]? = nil) throws(SharedDataError) -> String {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let root = try root(environment: environment)
        let path = (root as NSString).appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: path) else {
            throw SharedDataError(message: "\(path) does not exist: the data folder (\(root), from \(environment[environmentVariable] != nil ? "$\(environmentVariable)" : relativeRoot)) lacks \(relative)")
        }
        return path
    }

    /// The root if it can be found, else `../shared/data` from the current directory: a default to
    /// show in help texts and command-line defaults, which commands check before use.
    public static var defaultRoot: String {
        (try? root()) ?? relativeRoot
    }

    /// `../shared/data` from the current directory, then from the repository this file was built in.
    static var candidateRoots: [String] {
        let fromCurrent = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(relativeRoot).standardized.path
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let fromSource = repository.appendingPathComponent(relativeRoot).standardized.path
        return fromCurrent == fromSource ? [fromCurrent] : [fromCurrent, fromSource]
    }

    static func isDirectory(_ path: String) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
    }
}
