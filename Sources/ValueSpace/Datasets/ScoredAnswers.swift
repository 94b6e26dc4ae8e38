import Foundation
import ValueAlignCore

/// An answer with the ten value scores another evaluator gave it (the `scored_*.jsonl` files:
/// `prompt`, `answer`, `value_reward`).
public struct ScoredAnswer: Sendable, Codable, Equatable {
    public var prompt: String
    public var response: String
    /// The scores in [-1, 1], one per value.
    public var scores: ValueVector
    /// 1-based line in its file.
    public var line: Int

    public init(prompt: String, response: String, scores: ValueVector, line: Int) {
        self.prompt = prompt
        self.response = response
        self.scores = scores
        self.line = line
    }

    /// The pair an evaluator reads.
    public var pair: ValuePair { ValuePair(prompt: prompt, response: response) }
}

/// Reads answers scored by the FULCRA evaluator.
public enum ScoredAnswers {
    struct Row: Decodable {
        var prompt: String
        var response: String
        var scores: ValueVector

        enum CodingKeys: String, CodingKey { case prompt, answer, response, value_reward }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            prompt = try c.decode(String.self, forKey: .prompt)
            // The published files name the answer `answer`; accept `response` too.
            if c.contains(.answer) {
                response = try c.decode(String.self, forKey: .answer)
            } else {
                response = try c.decode(String.self, forKey: .response)
            }
            scores = try c.decode(ValueVector.self, forKey: .value_reward)
        }
    }

    /// Every line of `path`; a line that is not JSON, lacks a field, or whose `value_reward` is
    /// not ten numbers in [-1, 1] throws `JSONLinesError` with its line number.
    public static func load(_ path: String) throws -> [ScoredAnswer] {
        try JSONLines.read(Row.self, from: path).map { line, row in
            ScoredAnswer(prompt: row.prompt, response: row.response, scores: row.scores, line: line)
        }
    }
}
