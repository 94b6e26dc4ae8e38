public import Foundation

/// A JSON Lines file problem, with the 1-based line number.
public struct JSONLinesError: Error, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int
    public var message: String
    public var description: String { "\(path):\(line): \(message)" }

    public init(path: String, line: Int, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }
}

/// Reads and appends JSON Lines files. Blank lines are allowed; any other line that does not
/// decode is an error naming its line (never skipped silently).
public enum JSONLines {
    /// Decodes every non-blank line of `path` as `T`.
    public static func read<T: Decodable>(_ type: T.Type, from path: String) throws -> [(line: Int, value: T)] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JSONLinesError(path: path, line: 0, message: "cannot read the file")
        }
        return try decode(type, data, path: path)
    }

    /// The lines of `data` (read from `path`, named in errors).
    static func decode<T: Decodable>(_ type: T.Type, _ data: Data, path: String) throws -> [(line: Int, value: T)] {
        var result: [(Int, T)] = []
        let decoder = JSONDecoder()
        var lineNumber = 0
        for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Data(raw)
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            guard String(data: line, encoding: .utf8) != nil else {
                throw JSONLinesError(path: path, line: lineNumber, message: "not valid UTF-8")
            }
            do {
                result.append((lineNumber, try decoder.decode(T.self, from: line)))
            } catch {
                throw JSONLinesError(path: path, line: lineNumber, message: describe(error))
            }
        }
        return result
    }

    /// Reads a run's own state file (written by `append`), where a last line without its newline
    /// is a write cut short (a killed process, a power cut): that line is dropped and cut from the
    /// file, so the run resumes and redoes only that record. Any other bad line is an error, as
    /// in `read`; a missing file is no records.
    public static func readState<T: Decodable>(_ type: T.Type, from path: String) throws -> [(line: Int, value: T)] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JSONLinesError(path: path, line: 0, message: "cannot read the file")
        }
        guard let last = data.last, last != UInt8(ascii: "\n") else { return try decode(type, data, path: path) }
        let complete = data.lastIndex(of: UInt8(ascii: "\n")).map { data.index(after: $0) } ?? data.startIndex
        let tail = data[complete...]
        if (try? JSONDecoder().decode(T.self, from: Data(tail))) != nil { return try decode(type, data, path: path) }
        // The torn line goes; the complete lines before it are read as usual.
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw JSONLinesError(path: path, line: 0, message: "cannot open the file to cut a torn last line")
        }
        defer { try? handle.close() }
        try handle.truncate(atOffset: UInt64(complete - data.startIndex))
        try handle.synchronize()
        return try decode(type, Data(data[..<complete]), path: path)
    }

    /// Appends one record as a line (creating the file), flushed so a killed run loses at most
    /// the line being written. A file whose last line lacks its newline gets one first, so the
    /// record never joins it.
    public static func append<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(UInt8(ascii: "\n"))
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw JSONLinesError(path: path, line: 0, message: "cannot create the file")
            }
        }
        guard let handle = FileHandle(forUpdatingAtPath: path) else {
            throw JSONLinesError(path: path, line: 0, message: "cannot open the file for writing")
        }
        defer { try? handle.close() }
        let end = try handle.seekToEnd()
        if end > 0 {
            try handle.seek(toOffset: end - 1)
            if try handle.read(upToCount: 1) != Data([UInt8(ascii: "\n")]) { data.insert(UInt8(ascii: "\n"), at: data.startIndex) }
            try handle.seek(toOffset: end)
        }
        try handle.write(contentsOf: data)
        try handle.synchronize()
    }

    /// A short, user-facing reading of a decoding error.
    public static func describe(_ error: any Error) -> String {
        func path(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "the line" : "'\(p)'"
        }
        switch error {
        case let DecodingError.keyNotFound(key, c):
            let parent = c.codingPath.isEmpty ? "" : " in \(path(c))"
            return "missing field '\(key.stringValue)'\(parent)"
        case let DecodingError.typeMismatch(type, c): return "\(path(c)) should be \(type)"
        case let DecodingError.valueNotFound(type, c): return "\(path(c)) is null, expected \(type)"
        case let DecodingError.dataCorrupted(c):
            return c.codingPath.isEmpty ? "not valid JSON" : "\(path(c)): \(c.debugDescription)"
        default: return "\(error)"
        }
    }
}
