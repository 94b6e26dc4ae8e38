import Foundation
import ValueAlignCore

/// One prompt/response pair read from a file, with where it came from.
public struct PairRecord: Sendable, Codable, Equatable {
    /// The record's `id` when it has one (the `valuealign generate` output always does).
    public var id: String?
    public var prompt: String
    public var response: String
    /// 1-based line in its file.
    public var line: Int

    public init(id: String? = nil, prompt: String, response: String, line: Int) {
        self.id = id
        self.prompt = prompt
        self.response = response
        self.line = line
    }

    /// The pair an evaluator reads.
    public var pair: ValuePair { ValuePair(prompt: prompt, response: response) }
}

/// Reads prompt/response JSON Lines: `{"prompt", "response"}` (`answer` is accepted for
/// `response`), or the `valuealign generate` output `{"id", "messages": [...], "response"}`,
/// where the prompt is the last `user` message (earlier turns and the system prompt are context
/// the evaluator does not see).
///
/// A line that is not JSON, has no `response`/`answer`, or has neither `prompt` nor `messages`
/// throws `JSONLinesError` with its line number. Rows with an empty prompt or response, or
/// `messages` without a user turn, are dropped and counted in the report.
public enum PromptResponseFile {
    /// Reason keys used in `DatasetReport.droppedRows`.
    public enum DropReason {
        public static let emptyPrompt = "empty prompt"
        public static let emptyResponse = "empty response"
        public static let noUserMessage = "messages without a user turn"
    }

    struct Row: Decodable {
        var id: String?
        var prompt: String?
        var messages: [ChatMessage]?
        var response: String

        enum CodingKeys: String, CodingKey { case id, prompt, messages, response, answer }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            // Ids may be written as numbers by other tools.
            if let s = try? c.decodeIfPresent(String.self, forKey: .id) {
                id = s
            } else if let n = try? c.decodeIfPresent(Int.self, forKey: .id) {
                id = String(n)
            }
            prompt = try c.decodeIfPresent(String.self, forKey: .prompt)
            messages = try c.decodeIfPresent([ChatMessage].self, forKey: .messages)
            if prompt == nil && messages == nil {
                throw DecodingError.keyNotFound(CodingKeys.prompt, .init(codingPath: [], debugDescription: "neither prompt nor messages"))
            }
            if c.contains(.response) {
                response = try c.decode(String.self, forKey: .response)
            } else if c.contains(.answer) {
                response = try c.decode(String.self, forKey: .answer)
            } else {
                throw DecodingError.keyNotFound(CodingKeys.response, .init(codingPath: [], debugDescription: "no response"))
            }
        }
    }

    /// Every usable pair of `path` and the report of what was dropped.
    public static func load(_ path: String) throws -> (records: [PairRecord], report: DatasetReport) {
        let rows = try JSONLines.read(Row.self, from: path)
        var report = DatasetReport(rows: rows.count)
        var records: [PairRecord] = []
        for (line, row) in rows {
            let prompt: String
            if let p = row.prompt {
                prompt = p
            } else if let last = row.messages?.last(where: { $0.role == .user }) {
                prompt = last.content
            } else {
                report.count(DropReason.noUserMessage, in: \.droppedRows)
                continue
            }
            if prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                report.count(DropReason.emptyPrompt, in: \.droppedRows)
                continue
            }
            if row.response.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                report.count(DropReason.emptyResponse, in: \.droppedRows)
                continue
            }
            records.append(PairRecord(id: row.id, prompt: prompt, response: row.response, line: line))
        }
        report.kept = records.count
        return (records, report)
    }
}
