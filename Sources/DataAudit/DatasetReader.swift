public import Foundation

/// One example of a dataset: a prompt with its response (SFT, chat), or with a chosen and a
/// rejected response (preference data). `raw` is the record's text as it stands in the file, so
/// filtered copies reproduce it byte for byte.
public struct DatasetExample: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable { case pair, preference }

    /// 1-based line the record starts on.
    public var line: Int
    public var id: String
    public var source: String
    public var prompt: String
    /// The response (for preference data: the chosen one).
    public var response: String
    /// The rejected response of a preference pair.
    public var rejected: String?
    public var raw: String

    public var kind: Kind { rejected == nil ? .pair : .preference }
}

/// A record the reader could not use, with its line and what is wrong.
public struct BadRecord: Sendable, Equatable, Codable {
    public var line: Int
    public var message: String
    public var raw: String
}

/// Where the columns of a CSV file are (header names, matched case-insensitively).
public struct CSVColumns: Sendable, Equatable {
    public var prompt = "prompt"
    public var response = "response"
    public var chosen = "chosen"
    public var rejected = "rejected"
    public var id = "id"
    public var source = "source"
    public init() {}
}

/// Reads a dataset file record by record without holding it in memory: JSON Lines (every common
/// layout, detected per record) or CSV with named columns (RFC 4180 quoting; a row may span
/// lines). Bad records are returned, with their line numbers, never skipped.
///
/// JSONL layouts: `{prompt, response|completion|output|answer}`; `{prompt, chosen, rejected}`
/// (strings or TRL's message lists); `{chosen, rejected}` HH-style dialogues
/// ("\n\nHuman: ...\n\nAssistant: ...", the shared prefix is the prompt); `{messages: [...]}`
/// (OpenAI chat; the last assistant turn is the response); `{instruction, input?, output}`
/// (Alpaca); `{text}` HH-style dialogue. `id` and `source` are read when present.
public final class DatasetReader {
    public enum Item: Sendable, Equatable {
        case example(DatasetExample)
        case bad(BadRecord)
    }

    public let path: String
    let lines: LineReader
    let isCSV: Bool
    let columns: CSVColumns
    var header: [String]?
    var headerRaw = ""
    let defaultSource: String

    public init(path: String, csvColumns: CSVColumns = CSVColumns()) throws {
        self.path = path
        lines = try LineReader(path: path)
        isCSV = path.lowercased().hasSuffix(".csv")
        columns = csvColumns
        defaultSource = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        if isCSV {
            guard let (line, text) = try nextCSVRow() else { throw BadHeader(path: path, message: "empty CSV (no header row)") }
            header = try Self.csvFields(text, line: line, path: path).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            headerRaw = text
            let h = header!
            let hasPair = h.contains(columns.prompt.lowercased()) && h.contains(columns.response.lowercased())
            let hasPreference = h.contains(columns.chosen.lowercased()) && h.contains(columns.rejected.lowercased())
            guard hasPair || hasPreference else {
                throw BadHeader(path: path, message: "the CSV header needs '\(columns.prompt)' and '\(columns.response)' columns, or '\(columns.chosen)' and '\(columns.rejected)' (set them with --prompt-column etc.); it has \(h.joined(separator: ", "))")
            }
        }
    }

    /// The CSV header row as written (nil for JSONL), for filtered copies.
    public var csvHeader: String? { isCSV ? headerRaw : nil }

    public struct BadHeader: Error, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "\(path):1: \(message)" }
    }

    /// The next record, nil at the end of the file.
    public func next() throws -> Item? {
        guard let (line, text) = try nextText() else { return nil }
        return isCSV ? csvItem(line: line, text: text) : Self.jsonItem(line: line, text: text, defaultSource: defaultSource)
    }

    /// The next record's text as it stands in the file (a non-blank JSONL line, or a CSV row
    /// with the lines it spans) and the line it starts on, without parsing it.
    public func nextText() throws -> (line: Int, text: String)? {
        isCSV ? try nextCSVRow() : try lines.nextNonBlank()
    }

    // MARK: JSON Lines

    static func jsonItem(line: Int, text: String, defaultSource: String) -> Item {
        func bad(_ message: String) -> Item { .bad(BadRecord(line: line, message: message, raw: text)) }
        let object: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return bad("not a JSON object") }
            object = o
        } catch {
            return bad("not valid JSON")
        }
        var id = "line-\(line)"
        if let s = object["id"] as? String { id = s } else if let n = object["id"] as? NSNumber { id = n.stringValue }
        let source = (object["source"] as? String) ?? (object["dataset"] as? String) ?? defaultSource
        func example(_ prompt: String, _ response: String, _ rejected: String? = nil) -> Item {
            if response.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return bad(rejected == nil ? "empty response" : "empty chosen response") }
            if let rejected, rejected.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return bad("empty rejected response") }
            return .example(DatasetExample(line: line, id: id, source: source, prompt: prompt, response: response, rejected: rejected, raw: text))
        }
        let responseKeys = ["response", "completion", "output", "answer"]
        if object["chosen"] != nil || object["rejected"] != nil {
            guard let chosenValue = object["chosen"], let rejectedValue = object["rejected"] else { return bad("a preference record needs both 'chosen' and 'rejected'") }
            if let chosen = chosenValue as? String, let rejected = rejectedValue as? String {
                if let prompt = object["prompt"] as? String { return example(prompt, chosen, rejected) }
                guard let (p1, c) = splitDialogue(chosen), let (p2, r) = splitDialogue(rejected) else {
                    return bad("no 'prompt', and 'chosen'/'rejected' are not Human/Assistant dialogues")
                }
                guard p1 == p2 else { return bad("'chosen' and 'rejected' do not share the dialogue before their last Assistant turn") }
                return example(p1, c, r)
            }
            if let chosen = chosenValue as? [Any], let rejected = rejectedValue as? [Any] {
                guard let c = messages(chosen), let r = messages(rejected) else { return bad("'chosen'/'rejected' are lists but not of {role, content} messages") }
                var promptTurns: [(String, String)] = []
                if let p = object["prompt"] as? String { promptTurns = [("user", p)] } else if let p = object["prompt"] as? [Any], let m = messages(p) { promptTurns = m }
                guard let cLast = c.last, cLast.0 == "assistant", let rLast = r.last, rLast.0 == "assistant" else {
                    return bad("'chosen' and 'rejected' must end with an assistant message")
                }
                let context = promptTurns + c.dropLast()
                return example(render(context), cLast.1, rLast.1)
            }
            return bad("'chosen' and 'rejected' must both be strings or both message lists")
        }
        if let list = object["messages"] {
            guard let raw = list as? [Any], let m = messages(raw) else { return bad("'messages' is not a list of {role, content} messages") }
            guard let last = m.last, last.0 == "assistant" else { return bad("the last message is not the assistant's: nothing to audit") }
            return example(render(Array(m.dropLast())), last.1)
        }
        if let prompt = object["prompt"] as? String {
            guard let key = responseKeys.first(where: { object[$0] is String }) else {
                return bad("a 'prompt' without a 'response' (or completion, output, answer) string")
            }
            return example(prompt, object[key] as! String)
        }
        if let instruction = object["instruction"] as? String, let output = object["output"] as? String {
            let input = (object["input"] as? String) ?? ""
            return example(input.isEmpty ? instruction : instruction + "\n\n" + input, output)
        }
        if let dialogue = object["text"] as? String {
            guard let (p, r) = splitDialogue(dialogue) else { return bad("'text' is not a Human/Assistant dialogue") }
            return example(p, r)
        }
        return bad("no known layout (prompt+response, prompt+chosen+rejected, chosen+rejected, messages, instruction+output, text); keys: \(object.keys.sorted().joined(separator: ", "))")
    }

    /// {role, content} messages; nil if any item is not one.
    static func messages(_ list: [Any]) -> [(String, String)]? {
        var out: [(String, String)] = []
        for item in list {
            guard let m = item as? [String: Any], let role = m["role"] as? String else { return nil }
            if let content = m["content"] as? String {
                out.append((role, content))
            } else if let parts = m["content"] as? [Any] {  // OpenAI content parts: keep the text ones
                out.append((role, parts.compactMap { ($0 as? [String: Any])?["text"] as? String }.joined(separator: "\n")))
            } else {
                return nil
            }
        }
        return out
    }

    /// Earlier turns as one prompt text: a single user turn is its text; more turns are labelled.
    static func render(_ turns: [(String, String)]) -> String {
        if turns.count == 1, turns[0].0 == "user" { return turns[0].1 }
        return turns.map { "\($0.0.prefix(1).uppercased() + $0.0.dropFirst()): \($0.1)" }.joined(separator: "\n\n")
    }

    /// An HH-style dialogue cut before its last "Assistant:" turn: (earlier dialogue, last answer).
    static func splitDialogue(_ text: String) -> (String, String)? {
        guard let range = text.range(of: "\n\nAssistant:", options: .backwards) ?? text.range(of: "Assistant:", options: .backwards),
              text.range(of: "Human:") != nil else { return nil }
        let prompt = String(text[..<range.lowerBound]).trimmingCharacters(in: .whitespacesAndNewlines)
        let answer = String(text[range.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
        return (prompt, answer)
    }

    // MARK: CSV

    /// The next CSV row's text (lines joined while a quoted field is open) and its first line.
    func nextCSVRow() throws -> (Int, String)? {
        while let (line, first) = try lines.next() {
            var text = first
            var quotes = first.utf8.reduce(0) { $0 + ($1 == UInt8(ascii: "\"") ? 1 : 0) }
            while quotes % 2 == 1 {
                guard let (_, more) = try lines.next() else { return (line, text) }  // unclosed: csvFields reports it
                text += "\n" + more
                quotes += more.utf8.reduce(0) { $0 + ($1 == UInt8(ascii: "\"") ? 1 : 0) }
            }
            if text.trimmingCharacters(in: .whitespaces).isEmpty || text == "\r" { continue }
            return (line, text.hasSuffix("\r") ? String(text.dropLast()) : text)
        }
        return nil
    }

    func csvItem(line: Int, text: String) -> Item {
        func bad(_ message: String) -> Item { .bad(BadRecord(line: line, message: message, raw: text)) }
        let fields: [String]
        do { fields = try Self.csvFields(text, line: line, path: path) } catch { return bad("\(error)") }
        guard let header else { return bad("no header") }
        guard fields.count == header.count else { return bad("\(fields.count) fields where the header has \(header.count)") }
        func field(_ name: String) -> String? { header.firstIndex(of: name.lowercased()).map { fields[$0] } }
        let id = field(columns.id).flatMap { $0.isEmpty ? nil : $0 } ?? "line-\(line)"
        let source = field(columns.source).flatMap { $0.isEmpty ? nil : $0 } ?? defaultSource
        let prompt = field(columns.prompt) ?? ""
        if let chosen = field(columns.chosen), let rejected = field(columns.rejected) {
            if chosen.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return bad("empty chosen response") }
            if rejected.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return bad("empty rejected response") }
            return .example(DatasetExample(line: line, id: id, source: source, prompt: prompt, response: chosen, rejected: rejected, raw: text))
        }
        let response = field(columns.response) ?? ""
        if response.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return bad("empty response") }
        return .example(DatasetExample(line: line, id: id, source: source, prompt: prompt, response: response, rejected: nil, raw: text))
    }

    struct CSVError: Error, CustomStringConvertible { var description: String }

    /// The fields of one CSV row (RFC 4180: quotes around fields, "" for a quote inside).
    static func csvFields(_ text: String, line: Int, path: String) throws -> [String] {
        var fields: [String] = [], field = "", quoted = false, atStart = true
        var scalars = Array(text.unicodeScalars)[...]
        if scalars.first == "\u{FEFF}" { scalars = scalars.dropFirst() }
        var i = scalars.startIndex
        while i < scalars.endIndex {
            let c = scalars[i]
            if quoted {
                if c == "\"" {
                    let n = scalars.index(after: i)
                    if n < scalars.endIndex, scalars[n] == "\"" { field.unicodeScalars.append("\""); i = n } else { quoted = false }
                } else {
                    field.unicodeScalars.append(c)
                }
            } else if c == "\"" && atStart {
                quoted = true
                atStart = false
            } else if c == "," {
                fields.append(field)
                field = ""
                atStart = true
            } else {
                field.unicodeScalars.append(c)
                atStart = false
            }
            i = scalars.index(after: i)
        }
        if quoted { throw CSVError(description: "a quoted field is not closed") }
        fields.append(field)
        return fields
    }
}

/// Lines of a file read in 1 MiB chunks, with 1-based line numbers; the trailing newline is not
/// part of a line. Invalid UTF-8 is replaced (and such a record fails to parse where it matters).
final class LineReader {
    let handle: FileHandle
    let path: String
    var buffer = Data()
    var lineNumber = 0
    var atEnd = false

    init(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw DatasetReader.BadHeader(path: path, message: "cannot open the file")
        }
        self.handle = handle
        self.path = path
    }

    deinit { try? handle.close() }

    /// Start of the unread part of `buffer`.
    var position = 0

    /// The next line with more than spaces, tabs or a carriage return.
    func nextNonBlank() throws -> (Int, String)? {
        while let (line, text) = try next() {
            if !text.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) { return (line, text) }
        }
        return nil
    }

    func next() throws -> (Int, String)? {
        while true {
            if let newline = buffer[(buffer.startIndex + position)...].firstIndex(of: UInt8(ascii: "\n")) {
                let bytes = buffer[(buffer.startIndex + position)..<newline]
                position = newline - buffer.startIndex + 1
                lineNumber += 1
                return (lineNumber, String(decoding: bytes, as: UTF8.self))
            }
            // Keep only the unread tail before reading more.
            buffer = Data(buffer[(buffer.startIndex + position)...])
            position = 0
            if atEnd {
                guard !buffer.isEmpty else { return nil }
                let bytes = buffer
                buffer = Data()
                lineNumber += 1
                return (lineNumber, String(decoding: bytes, as: UTF8.self))
            }
            let chunk = try handle.read(upToCount: 1 << 20) ?? Data()
            if chunk.isEmpty { atEnd = true } else { buffer.append(chunk) }
        }
    }
}
