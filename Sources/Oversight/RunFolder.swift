import Foundation

/// What the oversight runs (judge, debate, cai generate) share about their folders: the identity
/// file `run.json`, written by the first run and compared by every rerun, and pretty JSON output.
enum RunFolder {
    /// Creates `directory` and claims it for `identity`: a rerun with the same identity continues;
    /// a folder claimed by another is refused with `holder` ("another judge run (...)") and the
    /// names `differences` gives for what differs.
    static func claim<Identity: Codable>(_ directory: URL, for identity: Identity, holder: (Identity) -> String,
                                         differences: (Identity) -> [String]) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent("run.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            try writeJSON(identity, to: url)
            return
        }
        guard let previous = try? JSONDecoder().decode(Identity.self, from: data) else {
            throw OversightError.invalid("\(url.path) is unreadable; choose another --out")
        }
        let differing = differences(previous)
        guard differing.isEmpty else {
            throw OversightError.invalid("\(directory.path) holds \(holder(previous)) (\(differing.joined(separator: ", ")) differ); choose another --out")
        }
    }

    /// `value` as pretty, key-sorted JSON.
    static func writeJSON(_ value: some Encodable, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(value).write(to: url)
    }

    /// The names of the fields whose flag is set.
    static func differing(_ fields: [(String, Bool)]) -> [String] { fields.filter(\.1).map(\.0) }
}
