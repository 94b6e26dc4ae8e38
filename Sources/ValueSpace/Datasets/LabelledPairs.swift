import Foundation
import ValueAlignCore

/// Prompt/response pairs with value labels or scores in a plain JSON Lines format, for data that
/// is not FULCRA's (the project's own training files, a user's labelled set):
///
/// - labels: `{"prompt": "...", "response": "...", "labels": {"benevolence": -1, ...}}`, each
///   label -1 (opposed), 0 (no connection) or +1 (supported); values not named are 0. `labels`
///   may also be an array of ten in `SchwartzValue` order.
/// - scores: `{"prompt": "...", "response": "...", "scores": {"security": 0.4, ...}}`, each in
///   [-1, 1] (or an array of ten).
///
/// Other fields are ignored. A line that is not JSON, lacks a field, names a value outside the
/// ten, or carries a label other than -1/0/+1 throws `JSONLinesError` naming its file and line.
public enum LabelledPairs {
    /// The formats `evaluator test` reads.
    public enum Format: String, Sendable, CaseIterable {
        /// FULCRA dialogues (`dialogue`, `value_types`).
        case fulcra
        /// FULCRA-evaluator scored answers (`prompt`, `answer`, `value_reward`).
        case fulcraScored
        /// `{prompt, response, labels}`.
        case labels
        /// `{prompt, response, scores}`.
        case scores
    }

    struct LabelRow: Decodable {
        var prompt: String
        var response: String
        var labels: [Int]

        enum CodingKeys: String, CodingKey { case prompt, response, labels }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            prompt = try c.decode(String.self, forKey: .prompt)
            response = try c.decode(String.self, forKey: .response)
            let vector = try c.decode(ValueVector.self, forKey: .labels)
            labels = try vector.components.enumerated().map { i, x in
                guard x == -1 || x == 0 || x == 1 else {
                    throw DecodingError.dataCorrupted(.init(
                        codingPath: c.codingPath + [CodingKeys.labels],
                        debugDescription: "\(SchwartzValue.allCases[i].rawValue) is \(x); a label is -1, 0 or 1"))
                }
                return Int(x)
            }
        }
    }

    struct ScoreRow: Decodable {
        var prompt: String
        var response: String
        var scores: ValueVector
    }

    /// The labelled pairs of `path` (`line` is the 1-based line in the file).
    public static func loadLabels(_ path: String) throws -> [FULCRAExample] {
        try JSONLines.read(LabelRow.self, from: path).map { line, row in
            FULCRAExample(prompt: row.prompt, response: row.response, labels: row.labels, line: line)
        }
    }

    /// The scored pairs of `path`.
    public static func loadScores(_ path: String) throws -> [ScoredAnswer] {
        try JSONLines.read(ScoreRow.self, from: path).map { line, row in
            ScoredAnswer(prompt: row.prompt, response: row.response, scores: row.scores, line: line)
        }
    }

    /// The format of `path`, read from the fields of its first non-blank line.
    public static func detect(_ path: String) throws -> Format {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw JSONLinesError(path: path, line: 0, message: "cannot read the file")
        }
        var lineNumber = 0
        for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            guard raw.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any] else {
                throw JSONLinesError(path: path, line: lineNumber, message: "not a JSON object")
            }
            if object["dialogue"] != nil { return .fulcra }
            if object["value_reward"] != nil { return .fulcraScored }
            if object["labels"] != nil { return .labels }
            if object["scores"] != nil { return .scores }
            throw JSONLinesError(path: path, line: lineNumber, message:
                "unknown format: expected FULCRA's 'dialogue' + 'value_types', a scored answer's 'value_reward', or 'prompt' + 'response' with 'labels' or 'scores'")
        }
        throw JSONLinesError(path: path, line: 0, message: "the file has no records")
    }

    /// Labelled pairs from a file in either labelled format (FULCRA or plain).
    public static func loadAnyLabels(_ path: String) throws -> [FULCRAExample] {
        switch try detect(path) {
        case .fulcra: return try FULCRADataset.load(path).0
        case .labels: return try loadLabels(path)
        case let other:
            throw JSONLinesError(path: path, line: 0, message: "holds \(other == .scores ? "scores" : "scored answers"), not labels; pass it with --scored")
        }
    }

    /// Scored pairs from a file in either scored format.
    public static func loadAnyScores(_ path: String) throws -> [ScoredAnswer] {
        switch try detect(path) {
        case .fulcraScored: return try ScoredAnswers.load(path)
        case .scores: return try loadScores(path)
        case .fulcra, .labels:
            throw JSONLinesError(path: path, line: 0, message: "holds labels, not scores; pass it with --labelled")
        }
    }
}
