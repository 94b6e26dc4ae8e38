public import Foundation
import ValueAlignCore

/// A judge run over a file: judgements appended to `judgements.jsonl` as they come (a rerun
/// judges only the items not yet there), then `summary.json` and `summary.md`. `run.json`
/// records the judge, task and input; a folder holding another run is refused.
public struct JudgeRun: Sendable {
    /// What identifies a run (a rerun with the same continues it).
    public struct Identity: Sendable, Codable, Equatable {
        public var judge: String
        public var task: JudgeTask
        public var input: String
        public var split: String?
        public var seed: UInt64
        /// The names of the fields that differ from `other`'s.
        public func differences(from other: Identity) -> [String] {
            RunFolder.differing([("judge", judge != other.judge), ("task", task != other.task), ("input", input != other.input),
                                 ("split", split != other.split), ("seed", seed != other.seed)])
        }

        public init(judge: String, task: JudgeTask, input: String, split: String?, seed: UInt64) {
            self.judge = judge
            self.task = task
            self.input = input
            self.split = split
            self.seed = seed
        }
    }

    public let judge: any Judge
    public let identity: Identity
    public let directory: URL
    /// Items judged between appends (and between progress reports).
    public var chunkSize = 16

    public init(judge: any Judge, identity: Identity, directory: URL) {
        self.judge = judge
        self.identity = identity
        self.directory = directory
    }

    public var judgementsPath: String { directory.appendingPathComponent("judgements.jsonl").path }

    /// Judges every item not yet judged, writes the summary and returns it. `progress` gets
    /// (done, total).
    public func run(_ items: [JudgeItem], progress: (@Sendable (Int, Int) -> Void)? = nil) async throws -> JudgeSummary {
        guard judge.tasks.contains(identity.task) else {
            throw OversightError.invalid("\(judge.name) cannot do \(identity.task.rawValue) judgements (it does \(judge.tasks.map(\.rawValue).joined(separator: ", ")))")
        }
        try RunFolder.claim(directory, for: identity, holder: { "another judge run (\($0.judge), \($0.task.rawValue) on \($0.input))" },
                            differences: { $0.differences(from: identity) })
        var done: [String: Judgement] = [:]
        if FileManager.default.fileExists(atPath: judgementsPath) {
            for (_, j) in try JSONLines.readState(Judgement.self, from: judgementsPath) { done[j.id] = j }
        }
        let todo = items.filter { done[$0.id] == nil }
        let before = items.count - todo.count
        progress?(before, items.count)
        var start = 0
        while start < todo.count {
            let chunk = Array(todo[start..<min(start + chunkSize, todo.count)])
            let base = before + start, total = items.count
            var report: (@Sendable (Int) -> Void)? = nil
            if let progress { report = { @Sendable done in progress(base + done, total) } }
            let judged = try await judge.judge(chunk, task: identity.task, progress: report)
            for j in judged {
                try JSONLines.append(j, to: judgementsPath)
                done[j.id] = j
            }
            start += chunk.count
        }
        let judgements = items.map { done[$0.id]! }
        let readable = judgements.filter { $0.decision != Judgement.unreadable }
        guard !readable.isEmpty else {
            let example = judgements.first?.verdicts.first?.text ?? ""
            throw OversightError.judge("\(judge.name) gave no usable verdict on any of \(judgements.count) items (it must answer with one of the allowed labels; first answer: \"\(example.prefix(80))\")")
        }
        let summary = JudgeSummary(judge: judge.name, task: identity.task, judgements: judgements)
        try RunFolder.writeJSON(summary, to: directory.appendingPathComponent("summary.json"))
        try ("# Judge run: \(identity.task.rawValue) on \(identity.input)\n\n" + summary.markdown)
            .write(to: directory.appendingPathComponent("summary.md"), atomically: true, encoding: .utf8)
        return summary
    }
}
