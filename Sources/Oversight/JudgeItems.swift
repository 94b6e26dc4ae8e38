import Foundation
public import ValueAlignCore
import ValueSpace

/// What a judge is asked.
public enum JudgeTask: String, Sendable, Codable, CaseIterable {
    /// Grade one answer on a 1-5 rubric.
    case single
    /// Say which of two answers is better (asked in both orders).
    case pairwise
    /// Say whether an answer agrees with a reference answer.
    case reference
}

/// One thing to judge: a conversation and the answer(s) to it, with a label when the file has one.
public struct JudgeItem: Sendable, Codable, Equatable {
    public var id: String
    /// The conversation the answers reply to (its last turn is the user's).
    public var context: [ChatMessage]
    /// One answer (single, reference) or two (pairwise, in the order shown first).
    public var responses: [String]
    /// The reference answer (reference task).
    public var reference: String?
    /// The label: pairwise 0 (first better), 1 (second better) or nil with `tie`; single the
    /// score 1...5; reference 1 (agrees) or 0.
    public var label: Int?
    /// Pairwise: the label says the two are equally good.
    public var tie: Bool
    public var split: String?

    public init(id: String, context: [ChatMessage], responses: [String], reference: String? = nil, label: Int? = nil,
                tie: Bool = false, split: String? = nil) {
        self.id = id
        self.context = context
        self.responses = responses
        self.reference = reference
        self.label = label
        self.tie = tie
        self.split = split
    }

    /// Whether the item carries a label.
    public var isLabelled: Bool { label != nil || tie }
}

/// Reads judge input files (JSON Lines), with errors that name the file and line.
///
/// - pairwise: `{"prompt", "response_a", "response_b", "label": "a"|"b"|"tie"}`, or preference
///   pairs `{"prompt", "chosen", "rejected"}`, or Anthropic HH lines `{"chosen", "rejected"}` holding
///   whole Human/Assistant dialogues. Chosen/rejected pairs are shown in a seeded order (so that a
///   judge that always picks one position scores at chance) and labelled accordingly.
/// - single: `{"prompt", "response", "score": 1-5}`.
/// - reference: `{"prompt", "response", "reference", "correct": true|false}`.
/// `id`, `split` and the label are optional everywhere; `answer` may stand for `response`.
public enum JudgeItems {
    struct Line: Decodable {
        var id: String?
        var prompt: String?
        var response: String?
        var answer: String?
        var responseA: String?
        var responseB: String?
        var chosen: String?
        var rejected: String?
        var reference: String?
        var label: String?
        var score: Int?
        var correct: Bool?
        var split: String?
        enum CodingKeys: String, CodingKey {
            case id, prompt, response, answer, chosen, rejected, reference, label, score, correct, split
            case responseA = "response_a", responseB = "response_b"
        }
    }

    /// The items of `path` for `task`; `split` keeps only lines of that split; `seed` orders
    /// chosen/rejected pairs.
    public static func load(_ path: String, task: JudgeTask, split: String? = nil, seed: UInt64 = 0, limit: Int? = nil) throws -> [JudgeItem] {
        var items: [JudgeItem] = []
        var ids: Set<String> = []
        for (number, line) in try JSONLines.read(Line.self, from: path) {
            let at = "\(path):\(number)"
            if let split, line.split != split { continue }
            let id = line.id ?? "line-\(number)"
            guard ids.insert(id).inserted else { throw OversightError.input("\(at): id '\(id)' appears twice") }
            var item = try parse(line, task: task, id: id, at: at, seed: seed)
            item.split = line.split
            items.append(item)
            if let limit, items.count >= limit { break }
        }
        guard !items.isEmpty else {
            throw OversightError.input("\(path): no items\(split.map { " in split '\($0)'" } ?? "") for a \(task.rawValue) judgement")
        }
        return items
    }

    static func parse(_ line: Line, task: JudgeTask, id: String, at: String, seed: UInt64) throws -> JudgeItem {
        func need(_ value: String?, _ field: String) throws -> String {
            guard let value, !value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw OversightError.input("\(at): missing or empty '\(field)' (a \(task.rawValue) line needs it)")
            }
            return value
        }
        switch task {
        case .single:
            let response = try need(line.response ?? line.answer, "response")
            if let s = line.score, !(1...5).contains(s) { throw OversightError.input("\(at): 'score' must be 1 to 5, got \(s)") }
            return JudgeItem(id: id, context: [.user(try need(line.prompt, "prompt"))], responses: [response], label: line.score)
        case .reference:
            let response = try need(line.response ?? line.answer, "response")
            return JudgeItem(id: id, context: [.user(try need(line.prompt, "prompt"))], responses: [response],
                             reference: try need(line.reference, "reference"), label: line.correct.map { $0 ? 1 : 0 })
        case .pairwise:
            if line.responseA != nil || line.responseB != nil {
                let a = try need(line.responseA, "response_a"), b = try need(line.responseB, "response_b")
                var label: Int?, tie = false
                switch line.label?.lowercased() {
                case nil: break
                case "a"?: label = 0
                case "b"?: label = 1
                case "tie"?: tie = true
                case let other?: throw OversightError.input("\(at): 'label' must be \"a\", \"b\" or \"tie\", got \"\(other)\"")
                }
                return JudgeItem(id: id, context: [.user(try need(line.prompt, "prompt"))],
                                 responses: [a, b], label: label, tie: tie)
            }
            let chosen = try need(line.chosen, "chosen (or response_a and response_b)")
            let rejected = try need(line.rejected, "rejected")
            let context: [ChatMessage], good: String, bad: String
            if let prompt = line.prompt {
                context = [.user(prompt)]
                (good, bad) = (chosen, rejected)
            } else {
                guard let c = HHDialogue.turns(chosen), let r = HHDialogue.turns(rejected), c.count >= 2, r.count >= 2,
                      c.last?.role == .assistant, r.last?.role == .assistant, c.dropLast() == r.dropLast() else {
                    throw OversightError.input("\(at): without 'prompt', 'chosen' and 'rejected' must be Human/Assistant dialogues that differ only in the last answer")
                }
                context = Array(c.dropLast())
                (good, bad) = (c.last!.content, r.last!.content)
            }
            guard good != bad else { throw OversightError.input("\(at): the two answers are identical") }
            // A seeded coin per id decides which is shown first.
            var hash: UInt64 = seed
            for byte in id.utf8 { hash = SplitMix64.mix(hash, UInt64(byte)) }
            let chosenFirst = SplitMix64.finalize(hash) & 1 == 0
            return JudgeItem(id: id, context: context, responses: chosenFirst ? [good, bad] : [bad, good], label: chosenFirst ? 0 : 1)
        }
    }
}
