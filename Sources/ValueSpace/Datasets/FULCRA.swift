import Foundation
import ValueAlignCore

/// One FULCRA training example: the user's request, the assistant's answer and its ten value
/// labels.
public struct FULCRAExample: Sendable, Codable, Equatable {
    /// The Human side of the dialogue before the first "Bob:" answer.
    public var prompt: String
    /// The first "Bob:" answer.
    public var response: String
    /// Ten labels in `SchwartzValue` order: -1 opposed, 0 no connection, +1 supported.
    public var labels: [Int]
    /// 1-based line of the example in its file.
    public var line: Int

    public init(prompt: String, response: String, labels: [Int], line: Int) {
        self.prompt = prompt
        self.response = response
        self.labels = labels
        self.line = line
    }

    /// The pair an evaluator reads.
    public var pair: ValuePair { ValuePair(prompt: prompt, response: response) }

    /// The labels as a value vector (components -1, 0, +1).
    public var vector: ValueVector { ValueVector(unchecked: labels.map(Double.init)) }

    /// The label of one value.
    public subscript(_ value: SchwartzValue) -> Int { labels[value.index] }
}

/// Reads the FULCRA value-labelled dialogues (`trustworthy.jsonl`: `dialogue` as
/// "Human: ...\nBob: ...", `value_types` as ["security: -1", ...]).
///
/// Dialogue: turns start at a line beginning with "Human:" or "Bob:". The prompt is every Human
/// turn before the first Bob turn (joined by a blank line; in the published file there is always
/// exactly one), the response is that first Bob turn; later turns are ignored. A row without a
/// Human turn before a Bob answer, or with an empty prompt or response, is dropped and counted.
///
/// Labels: values not listed are 0. "name: mark" is read leniently where the meaning is
/// unambiguous: any case, spaces around the colon, hyphen/space/underscore in the name, and the
/// marks "+1", "1", "+ 1", "-1", "−1". Anything else ("1+", "=1", no colon, a name outside the
/// ten such as "humility") drops that label and counts it; the rest of the row is kept. A row whose
/// labels were all dropped is dropped (its zeros would claim "no connection"). Agreeing repeats
/// are merged. A value marked both +1 and -1 in one row is handled by `FULCRAConflictPolicy`:
/// by default the whole row is dropped, since either reading of it would teach a wrong label.
///
/// A line that is not JSON, or lacks `dialogue`/`value_types`, throws `JSONLinesError` with its
/// line number: a broken file is never read partially.
public enum FULCRADataset {
    /// What to do with a value labelled both +1 and -1 in one row.
    public enum ConflictPolicy: String, Sendable, Codable, CaseIterable {
        /// Drop the whole row (the default).
        case dropRow
        /// Keep the row and label that value 0.
        case neutral
    }

    struct Row: Decodable {
        var dialogue: String
        var value_types: [String]
    }

    /// Reason keys used in `DatasetReport.droppedRows`.
    public enum DropReason {
        public static let noHumanTurn = "no Human turn before the first Bob answer"
        public static let noAnswer = "no Bob answer"
        public static let emptyPrompt = "empty prompt"
        public static let emptyResponse = "empty response"
        public static let noUsableLabel = "labels listed but none usable"
        public static let conflictingLabels = "a value labelled both +1 and -1"
    }

    /// Reads `path`; see the type's documentation for what is normalised and dropped.
    public static func load(_ path: String) throws -> (examples: [FULCRAExample], report: DatasetReport) {
        try load(path, conflicts: .dropRow)
    }

    /// Reads `path`, handling contradictory labels as `conflicts` says.
    public static func load(_ path: String, conflicts policy: ConflictPolicy) throws -> (examples: [FULCRAExample], report: DatasetReport) {
        let rows = try JSONLines.read(Row.self, from: path)
        var report = DatasetReport(rows: rows.count)
        var examples: [FULCRAExample] = []
        examples.reserveCapacity(rows.count)
        for (line, row) in rows {
            let dialogue: (prompt: String, response: String)
            switch splitDialogue(row.dialogue) {
            case let .success(d): dialogue = d
            case let .failure(reason):
                report.count(reason.message, in: \.droppedRows)
                continue
            }
            guard let labels = parseLabels(row.value_types, policy: policy, report: &report) else { continue }
            examples.append(FULCRAExample(prompt: dialogue.prompt, response: dialogue.response, labels: labels, line: line))
        }
        report.kept = examples.count
        return (examples, report)
    }

    struct DialogueProblem: Error { var message: String }

    /// Splits "Human: ...\nBob: ..." into the prompt and the first answer.
    static func splitDialogue(_ text: String) -> Result<(prompt: String, response: String), DialogueProblem> {
        enum Speaker { case human, bob }
        var turns: [(Speaker, [Substring])] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("Human:") {
                turns.append((.human, [line.dropFirst("Human:".count)]))
            } else if line.hasPrefix("Bob:") {
                turns.append((.bob, [line.dropFirst("Bob:".count)]))
            } else if !turns.isEmpty {
                turns[turns.count - 1].1.append(line)
            } else if !line.allSatisfy(\.isWhitespace) {
                return .failure(DialogueProblem(message: DropReason.noHumanTurn))
            }
        }
        func body(_ lines: [Substring]) -> String {
            lines.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let firstBob = turns.firstIndex(where: { $0.0 == .bob }) else {
            return .failure(DialogueProblem(message: DropReason.noAnswer))
        }
        guard firstBob > 0 else { return .failure(DialogueProblem(message: DropReason.noHumanTurn)) }
        let prompt = turns[..<firstBob].map { body($0.1) }.filter { !$0.isEmpty }.joined(separator: "\n\n")
        let response = body(turns[firstBob].1)
        if prompt.isEmpty { return .failure(DialogueProblem(message: DropReason.emptyPrompt)) }
        if response.isEmpty { return .failure(DialogueProblem(message: DropReason.emptyResponse)) }
        return .success((prompt, response))
    }

    /// One "name: mark" label read leniently; nil when it cannot be used.
    static func parseLabel(_ raw: String) -> (value: SchwartzValue, mark: Int, canonical: Bool)? {
        guard let colon = raw.lastIndex(of: ":") else { return nil }
        let name = raw[..<colon].trimmingCharacters(in: .whitespaces)
        let mark = raw[raw.index(after: colon)...].filter { !$0.isWhitespace }
        guard let value = SchwartzValue(name: name) else { return nil }
        let sign: Int
        switch mark {
        case "+1", "1": sign = 1
        case "-1", "\u{2212}1": sign = -1
        default: return nil
        }
        let writtenNames = [value.rawValue, value.rawValue.replacingOccurrences(of: "_", with: "-")]
        let canonical = writtenNames.map { "\($0): \(sign > 0 ? "+1" : "-1")" }.contains(raw)
        return (value, sign, canonical)
    }

    static func parseLabels(_ raw: [String], policy: ConflictPolicy, report: inout DatasetReport) -> [Int]? {
        var marks: [SchwartzValue: Set<Int>] = [:]
        var usable = 0
        for label in raw {
            guard let parsed = parseLabel(label) else {
                report.count(label, in: \.droppedLabels)
                continue
            }
            usable += 1
            if !parsed.canonical { report.count(label, in: \.normalisedLabels) }
            if marks[parsed.value]?.contains(parsed.mark) == true { report.mergedDuplicates += 1 }
            marks[parsed.value, default: []].insert(parsed.mark)
        }
        if !raw.isEmpty && usable == 0 {
            report.count(DropReason.noUsableLabel, in: \.droppedRows)
            return nil
        }
        var labels = [Int](repeating: 0, count: SchwartzValue.allCases.count)
        var conflicting = false
        for (value, set) in marks {
            if set.count > 1 {
                report.conflicts += 1
                conflicting = true
            } else {
                labels[value.index] = set.first!
            }
        }
        if conflicting && policy == .dropRow {
            report.count(DropReason.conflictingLabels, in: \.droppedRows)
            return nil
        }
        return labels
    }
}
