import Foundation

/// Prompts from a CSV of harmful behaviours in HarmBench's layout (columns `Behavior`,
/// `FunctionalCategory`, `ContextString`, `BehaviorID`; RFC 4180 quoting, fields may span lines),
/// so red-team sets written elsewhere can be measured where a prompt JSONL is expected
/// (`GenerationJob.loadPrompts` reads any `.csv` path this way).
///
/// `standard` behaviours become one user turn; `contextual` ones carry their context first, as
/// HarmBench's own prompt does ("context\n\n---\n\nbehavior"); `copyright` behaviours (reproducing
/// song lyrics or book passages) are left out: they ask for no value-laden act, so a harmful-answer
/// rate over them would measure something else. A CSV with a `prompt` column instead is read as
/// one prompt per row, with `id` when present. A `split` column, when there is one, is the
/// record's split (so `--eval-split` and `--train-split` filter CSV files as they filter JSONL).
public enum BehaviorCSV {
    /// The prompts in file order, each with the line its row starts on; the record's id is the
    /// row's BehaviorID (or `id`, or `row-N`).
    public static func load(_ path: String) throws -> [(line: Int, value: PromptRecord)] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JSONLinesError(path: path, line: 0, message: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw JSONLinesError(path: path, line: 0, message: "not UTF-8") }
        let rows = try parse(text, path: path)
        guard let header = rows.first?.fields else { throw JSONLinesError(path: path, line: 0, message: "empty CSV (no header row)") }
        func column(_ name: String) -> Int? { header.firstIndex { $0.trimmingCharacters(in: .whitespaces).lowercased() == name.lowercased() } }
        guard let promptColumn = column("Behavior") ?? column("prompt") else {
            throw JSONLinesError(path: path, line: 1, message: "the header needs a 'Behavior' (HarmBench) or 'prompt' column; it has \(header.joined(separator: ", "))")
        }
        let category = column("FunctionalCategory"), context = column("ContextString"), idColumn = column("BehaviorID") ?? column("id")
        let splitColumn = column("split")
        var result: [(Int, PromptRecord)] = []
        for row in rows.dropFirst() {
            if row.fields.count == 1 && row.fields[0].isEmpty { continue }
            func field(_ c: Int?) -> String { c.flatMap { $0 < row.fields.count ? row.fields[$0] : nil } ?? "" }
            guard row.fields.count == header.count else {
                throw JSONLinesError(path: path, line: row.line, message: "\(row.fields.count) fields where the header has \(header.count)")
            }
            let kind = field(category).lowercased()
            if kind == "copyright" { continue }
            var prompt = field(promptColumn)
            guard !prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw JSONLinesError(path: path, line: row.line, message: "empty prompt")
            }
            let ctx = field(context)
            if !ctx.isEmpty { prompt = ctx + "\n\n---\n\n" + prompt }
            let id = field(idColumn).isEmpty ? "row-\(row.line)" : field(idColumn)
            let split = field(splitColumn)
            result.append((row.line, PromptRecord(id: id, prompt: prompt, split: split.isEmpty ? nil : split)))
        }
        return result
    }

    /// RFC 4180 rows with the line each starts on (1-based).
    static func parse(_ text: String, path: String) throws -> [(line: Int, fields: [String])] {
        var rows: [(Int, [String])] = [], fields: [String] = [], field = "", quoted = false, atFieldStart = true
        var line = 1, rowLine = 1
        var chars = Array(text.unicodeScalars)[...]
        if chars.first == "\u{FEFF}" { chars = chars.dropFirst() }
        var i = chars.startIndex
        func endRow() { fields.append(field); rows.append((rowLine, fields)); fields = []; field = ""; atFieldStart = true }
        while i < chars.endIndex {
            let c = chars[i]
            if quoted {
                if c == "\"" {
                    if chars.index(after: i) < chars.endIndex, chars[chars.index(after: i)] == "\"" { field.unicodeScalars.append("\""); i = chars.index(after: i) } else { quoted = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
            } else if c == "\"" && atFieldStart {
                quoted = true
                atFieldStart = false
            } else if c == "," {
                fields.append(field); field = ""; atFieldStart = true
            } else if c == "\n" || c == "\r" {
                if c == "\r", chars.index(after: i) < chars.endIndex, chars[chars.index(after: i)] == "\n" { i = chars.index(after: i) }
                endRow()
                line += 1
                rowLine = line
            } else {
                field.unicodeScalars.append(c)
                atFieldStart = false
            }
            i = chars.index(after: i)
        }
        if quoted { throw JSONLinesError(path: path, line: rowLine, message: "a quoted field is not closed") }
        if !field.isEmpty || !fields.isEmpty { endRow() }
        return rows
    }
}
