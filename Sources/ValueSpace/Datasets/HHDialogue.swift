import Foundation
public import ValueAlignCore

/// Anthropic HH-style dialogues: "\n\nHuman: ...\n\nAssistant: ..." repeated.
public enum HHDialogue {
    static let markers: [(String, ChatMessage.Role)] = [("\n\nHuman:", .user), ("\n\nAssistant:", .assistant)]

    /// The turns as chat messages (user for Human, assistant for Assistant), texts trimmed.
    /// Consecutive turns of one speaker are kept as they are. Nil when the text does not start
    /// with a turn marker (leading whitespace aside) or has no turn.
    public static func turns(_ text: String) -> [ChatMessage]? {
        // Leading newlines vary between sources; normalise to the two the markers expect.
        let body = "\n\n" + text.drop { $0 == "\n" || $0 == " " }
        var found: [(Range<String.Index>, ChatMessage.Role)] = []
        var cursor = body.startIndex
        while cursor < body.endIndex {
            let next = markers.compactMap { marker, role in
                body.range(of: marker, range: cursor..<body.endIndex).map { ($0, role) }
            }.min { $0.0.lowerBound < $1.0.lowerBound }
            guard let next else { break }
            found.append(next)
            cursor = next.0.upperBound
        }
        guard let first = found.first, first.0.lowerBound == body.startIndex else { return nil }
        return found.indices.map { i in
            let end = i + 1 < found.count ? found[i + 1].0.lowerBound : body.endIndex
            let content = body[found[i].0.upperBound..<end].trimmingCharacters(in: .whitespacesAndNewlines)
            return ChatMessage(role: found[i].1, content: content)
        }
    }

    /// The last Human turn and the Assistant answer after it, when the dialogue ends with one.
    public static func lastExchange(_ text: String) -> ValuePair? {
        guard let t = turns(text), t.count >= 2, t[t.count - 1].role == .assistant, t[t.count - 2].role == .user else { return nil }
        return ValuePair(prompt: t[t.count - 2].content, response: t[t.count - 1].content)
    }
}

/// A preference pair: one conversation so far and two candidate answers to its last user turn.
public struct PreferencePair: Sendable, Codable, Equatable {
    /// The turns before the answers; the last one is the user's.
    public var context: [ChatMessage]
    public var chosen: String
    public var rejected: String
    /// 1-based line in its file.
    public var line: Int

    public init(context: [ChatMessage], chosen: String, rejected: String, line: Int) {
        self.context = context
        self.chosen = chosen
        self.rejected = rejected
        self.line = line
    }

    /// The last user turn.
    public var prompt: String { context.last?.content ?? "" }
}

/// Reads `{"chosen", "rejected"}` HH dialogues (the preference files) into preference pairs.
///
/// Both dialogues must parse, end with an Assistant answer preceded by a Human turn, and share
/// every turn before that answer; rows that break this, or whose answers are empty or
/// identical, are dropped and counted. A line that is not JSON or lacks a field throws
/// `JSONLinesError` with its line number.
public enum PreferenceDataset {
    /// Reason keys used in `DatasetReport.droppedRows`.
    public enum DropReason {
        public static let notADialogue = "not a Human/Assistant dialogue"
        public static let noFinalAnswer = "does not end with an Assistant answer to a Human turn"
        public static let differentContext = "chosen and rejected differ before the last answer"
        public static let emptyAnswer = "empty answer"
        public static let identicalAnswers = "identical answers"
    }

    struct Row: Decodable {
        var chosen: String
        var rejected: String
    }

    public static func load(_ path: String) throws -> (pairs: [PreferencePair], report: DatasetReport) {
        let rows = try JSONLines.read(Row.self, from: path)
        var report = DatasetReport(rows: rows.count)
        var pairs: [PreferencePair] = []
        for (line, row) in rows {
            guard let chosen = HHDialogue.turns(row.chosen), let rejected = HHDialogue.turns(row.rejected) else {
                report.count(DropReason.notADialogue, in: \.droppedRows)
                continue
            }
            func endsWell(_ t: [ChatMessage]) -> Bool {
                t.count >= 2 && t[t.count - 1].role == .assistant && t[t.count - 2].role == .user
            }
            guard endsWell(chosen), endsWell(rejected) else {
                report.count(DropReason.noFinalAnswer, in: \.droppedRows)
                continue
            }
            guard chosen.dropLast() == rejected.dropLast() else {
                report.count(DropReason.differentContext, in: \.droppedRows)
                continue
            }
            let a = chosen.last!.content, b = rejected.last!.content
            if a.isEmpty || b.isEmpty {
                report.count(DropReason.emptyAnswer, in: \.droppedRows)
                continue
            }
            if a == b {
                report.count(DropReason.identicalAnswers, in: \.droppedRows)
                continue
            }
            pairs.append(PreferencePair(context: Array(chosen.dropLast()), chosen: a, rejected: b, line: line))
        }
        report.kept = pairs.count
        return (pairs, report)
    }
}
