public import Foundation
public import ValueAlignServer
public import ValueSpace
import ValueAlignCore
import LanguageModels

/// What the audit decided for one record, and why: a line of `scores.jsonl`.
public struct AuditedRecord: Sendable, Codable, Equatable {
    public enum Decision: String, Sendable, Codable, CaseIterable, Comparable {
        case keep, review, drop, bad
        var severity: Int { Self.allCases.firstIndex(of: self)! }
        public static func < (a: Decision, b: Decision) -> Bool { a.severity < b.severity }
    }

    public var line: Int
    public var id: String?
    public var source: String?
    public var kind: DatasetExample.Kind?
    public var decision: Decision
    public var reasons: [String] = []
    /// The policy's action on the response (the chosen one for preference pairs).
    public var action: GuardPolicy.Action?
    public var values: [Double]?
    public var distance: Double?
    public var inputValues: [Double]?
    public var rejectedValues: [Double]?
    public var rejectedDistance: Double?
    public var rejectedAction: GuardPolicy.Action?
    /// Preference pairs: chosen lies closer to the target than rejected.
    public var chosenCloser: Bool?
    /// Preference pairs: rejected lies closer to the target than chosen by more than the margin.
    public var suspectLabel: Bool?
    public var duplicateOf: Int?
    public var similarity: Double?
    public var contaminationSet: String?
    public var contaminationItem: String?
    public var contaminationOverlap: Double?
    public var promptExcerpt: String?
    public var responseExcerpt: String?
    /// Bad records: what is wrong.
    public var error: String?
}

/// Scores a dataset file with a value evaluator and sorts every record into keep / review / drop
/// against a guard policy, with near-duplicate and evaluation-set overlap checks; preference
/// pairs also get "does chosen lie closer to the target than rejected?".
///
/// Streaming: records are read, scored in batches and appended to `scores.jsonl` one batch at a
/// time, so memory does not grow with the texts (the duplicate index keeps ~0.5 KB per record).
/// Resumable: a rerun continues after the last record in `scores.jsonl` (a torn last line is
/// redone) when the input, policy and evaluator are unchanged. `finish()` then writes the
/// filtered copies (`keep`, `review`, `drop`, records verbatim), `bad-lines.jsonl`,
/// `summary.json` and `report.html`.
public struct DataAudit: Sendable {
    public struct Options: Sendable, Codable, Equatable {
        /// Records per evaluator call (the evaluator sorts each call's pairs by length and runs
        /// them in its own batches, so larger calls pad less).
        public var batchSize = 128
        public var limit: Int?
        /// Drop near-duplicates of earlier records (else only report them).
        public var dropDuplicates = true
        public var duplicateThreshold = 0.8
        /// Drop records whose prompt overlaps an evaluation item (else only report them).
        public var dropContaminated = true
        /// A preference pair is suspect when rejected lies closer to the target than chosen by more than this.
        public var pairMargin = 0.1
        /// Apply the policy's input stage to each prompt read alone (an extra, shorter evaluator
        /// pass); off: only the responses are checked.
        public var checkPrompts = true
        public init() {}
    }

    /// What a run's state was made with; a resume with anything else is refused.
    struct State: Codable, Equatable {
        var input: String
        var inputBytes: Int
        var inputModified: Double
        var policy: String
        var evaluator: String
        var options: Options
    }

    public let input: String
    public let outputDirectory: String
    public let policy: GuardPolicy
    public let evaluator: any ValueEvaluator
    public let options: Options
    public let csvColumns: CSVColumns
    public let contamination: ContaminationIndex

    public init(input: String, outputDirectory: String, policy: GuardPolicy, evaluator: any ValueEvaluator, options: Options = Options(),
                csvColumns: CSVColumns = CSVColumns(), contamination: ContaminationIndex = ContaminationIndex()) {
        self.input = input
        self.outputDirectory = outputDirectory
        self.policy = policy
        self.evaluator = evaluator
        self.options = options
        self.csvColumns = csvColumns
        self.contamination = contamination
    }

    var scoresPath: String { outputDirectory + "/scores.jsonl" }
    var statePath: String { outputDirectory + "/audit-state.json" }

    public struct Progress: Sendable {
        /// Records handled so far (this run and earlier ones).
        public var done: Int
        /// Records scored by this run.
        public var scoredNow: Int
        public var elapsed: TimeInterval
    }

    public struct AuditError: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Counts the records of a dataset file (a quick pass that parses nothing), for progress.
    public static func countRecords(_ path: String, csvColumns: CSVColumns = CSVColumns()) throws -> Int {
        let reader = try DatasetReader(path: path, csvColumns: csvColumns)
        var n = 0
        while try reader.nextText() != nil { n += 1 }
        return n
    }

    /// Scores every record not yet in `scores.jsonl`. `progress` returning false stops after the
    /// current batch (everything scored so far is kept). Returns the records handled in all.
    @discardableResult
    public func score(progress: (Progress) -> Bool = { _ in true }) async throws -> Int {
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        let attributes = try FileManager.default.attributesOfItem(atPath: input)
        let state = State(input: URL(fileURLWithPath: input).standardizedFileURL.path, inputBytes: (attributes[.size] as? NSNumber)?.intValue ?? -1,
                          inputModified: (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0,
                          policy: policy.name, evaluator: evaluator.name, options: options)
        // Only each record's line is needed to resume (decoding whole records would hold them all).
        struct ScoredLine: Decodable { var line: Int }
        let done = try JSONLines.readState(ScoredLine.self, from: scoresPath)
        if !done.isEmpty {
            guard let data = FileManager.default.contents(atPath: statePath), let saved = try? JSONDecoder().decode(State.self, from: data) else {
                throw AuditError(description: "\(scoresPath) exists without a readable \(statePath); remove the folder (or use --restart) to begin again")
            }
            guard saved == state else {
                throw AuditError(description: "\(outputDirectory) holds an audit of \(saved.input) with policy '\(saved.policy)', evaluator '\(saved.evaluator)' and other settings or an input that has changed since; use --restart to begin again, or another --out")
            }
        } else {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(state).write(to: URL(fileURLWithPath: statePath), options: .atomic)
        }
        let lastLine = done.last?.value.line ?? 0
        var handled = done.count
        let start = Date()
        var scoredNow = 0

        let reader = try DatasetReader(path: input, csvColumns: csvColumns)
        var duplicates = NearDuplicateIndex(threshold: options.duplicateThreshold)
        var batch: [(DatasetExample, (id: Int, similarity: Double)?)] = []
        func flush() async throws -> Bool {
            guard !batch.isEmpty else { return true }
            let records = try await decide(batch)
            for r in records { try JSONLines.append(r, to: scoresPath) }
            handled += records.count
            scoredNow += records.count
            batch.removeAll()
            return progress(Progress(done: handled, scoredNow: scoredNow, elapsed: Date().timeIntervalSince(start)))
        }
        var seen = 0
        while let item = try reader.next() {
            if let limit = options.limit, seen >= limit { break }
            seen += 1
            switch item {
            case let .bad(b):
                guard b.line > lastLine else { continue }
                guard try await flush() else { return handled }
                try JSONLines.append(AuditedRecord(line: b.line, decision: .bad, error: b.message), to: scoresPath)
                handled += 1
            case let .example(e):
                let signature = NearDuplicateIndex.signature(e.prompt + "\n" + e.response)
                let match = signature.flatMap { duplicates.match($0) }
                if let signature { duplicates.insert(signature, id: e.line) }
                guard e.line > lastLine else { continue }
                batch.append((e, match))
                if batch.count >= options.batchSize { guard try await flush() else { return handled } }
            }
        }
        _ = try await flush()
        return handled
    }

    /// Scores one batch and decides each record.
    func decide(_ batch: [(DatasetExample, (id: Int, similarity: Double)?)]) async throws -> [AuditedRecord] {
        var pairs: [ValuePair] = []
        for (e, _) in batch {
            pairs.append(ValuePair(prompt: e.prompt, response: e.response))
            if let r = e.rejected { pairs.append(ValuePair(prompt: e.prompt, response: r)) }
        }
        let checksInput = options.checkPrompts && !policy.input.isEmpty
        if checksInput { pairs += batch.map { ValuePair(prompt: "", response: $0.0.prompt) } }
        let assessments = try await evaluator.evaluate(pairs)
        guard assessments.count == pairs.count else {
            throw AuditError(description: "the evaluator \(evaluator.name) returned \(assessments.count) assessments for \(pairs.count) pairs")
        }
        var next = 0
        var inputIndex = pairs.count - (checksInput ? batch.count : 0)
        var out: [AuditedRecord] = []
        for (e, duplicate) in batch {
            let response = assessments[next].vector
            next += 1
            var record = AuditedRecord(line: e.line, id: e.id, source: e.source, kind: e.kind, decision: .keep)
            record.promptExcerpt = Self.excerpt(e.prompt)
            record.responseExcerpt = Self.excerpt(e.response)
            let output = policy.check(response, stage: .output)
            var input: StageCheck?
            if checksInput {
                input = policy.check(assessments[inputIndex].vector, stage: .input)
                record.inputValues = assessments[inputIndex].vector.components
                inputIndex += 1
            }
            let action = GuardPolicy.action(input: input, output: output)
            record.action = action
            record.values = response.components
            record.distance = output.distance
            record.reasons = ((input?.violations ?? []) + output.violations).map(\.description)
            record.decision = action == .block ? .drop : action == .allow ? .keep : .review
            if e.rejected != nil {
                let rejected = assessments[next].vector
                next += 1
                let check = policy.check(rejected, stage: .output)
                record.rejectedValues = rejected.components
                record.rejectedDistance = check.distance
                record.rejectedAction = check.action
                record.chosenCloser = output.distance < check.distance
                let suspect = check.distance + options.pairMargin < output.distance
                record.suspectLabel = suspect
                if suspect {
                    record.decision = max(record.decision, .review)
                    record.reasons.append(String(format: "rejected lies closer to the target than chosen (distance %.2f vs %.2f): a mislabelled pair?", check.distance, output.distance))
                }
            }
            if let duplicate {
                record.duplicateOf = duplicate.id
                record.similarity = duplicate.similarity
                record.reasons.append(String(format: "near-duplicate of line %d (similarity %.2f)", duplicate.id, duplicate.similarity))
                if options.dropDuplicates { record.decision = max(record.decision, .drop) }
            }
            if let hit = contamination.match(e.prompt) {
                record.contaminationSet = hit.item.set
                record.contaminationItem = hit.item.id
                record.contaminationOverlap = hit.overlap
                record.reasons.append(String(format: "prompt overlaps evaluation item %@ of %@ (%.0f%% of its 8-grams)", hit.item.id, hit.item.set, hit.overlap * 100))
                if options.dropContaminated { record.decision = max(record.decision, .drop) }
            }
            out.append(record)
        }
        return out
    }

    static func excerpt(_ text: String, limit: Int = 240) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count <= limit ? flat : String(flat.prefix(limit)) + "…"
    }
}
