import Foundation
import ValueAlignCore
public import ValueSpace

/// The evaluator's training data written for the project (issue 24), beside FULCRA: everyday
/// answers, harmful answers and refusals, so that the heads learn what ordinary traffic and
/// over-refusal look like (FULCRA is mostly harmful requests and their refusals).
///
/// Every file is read by path from the repository (`data/train/`, `data/refusals/`) and is
/// training data only: the project's evaluation sets (`data/eval/`, the refusal set's validation
/// and test splits) are separate files, and a training row whose prompt normalises
/// (`DatasetSplit.normalizedKey`) like an evaluation prompt is dropped and counted.
///
/// What each row teaches (the rules are part of the evaluator's definition; docs/evaluator.md):
/// - A labelled pair (`{prompt, response, labels}`) teaches its labels for the answer, all ten
///   values (the output check).
/// - Its prompt alone, read as the guard's input check reads a user's words (an empty context
///   and the request as the text), teaches the labels' opposed values and nothing else: a request
///   carries the intent to harm, while support is the answer's. An ordinary request is therefore
///   "no connection" on every value.
/// - Refusals of benign requests teach the value heads nothing: labelled as opposing benevolence
///   they taught the heads to read every refusal so, harmful requests' included (the heads read
///   the answer's tokens and barely the request). The reward charges them instead
///   (`BaseAlignReward.chargesBenignRefusals`, issue 24 item 3).
/// - A compliance with a harmful request (refusal set, train split) opposes benevolence; the other
///   values are left unlabelled.
/// - The project's prompt sets (`data/prompts`, train split only) teach the input check: a benign
///   request, however alarming its words ("kill a stuck process"), is "no connection" on every
///   value; a harmful request opposes the values its record lists (`values`) and nothing else.
/// - Every answer with a refusal label (the refusal set's train split, and every labelled pair
///   above as a compliance) trains the refusal head.
/// - Every request, read alone, trains the request head (`requestTraining`): harmful when its
///   labelled answer opposes a protected value (`HarmJudgement.protectedValues`), when the refusal
///   set calls its prompt harmful, or when its prompt-set record names a harm area; harmless
///   otherwise. The value prompts (`defaultRequestHeadPaths`) train this head only.
public struct ProjectTrainingData: Sendable {
    /// One value-head example: ten target distributions and ten weights (0 = unlabelled).
    public struct ValueExample: Sendable {
        public var pair: ValuePair
        public var targets: [Float]
        public var weights: [Float]
        /// What made it: "answer", "request", "harmful-compliance".
        public var kind: String
    }

    /// One answer of the refusal set.
    public struct RefusalExample: Sendable, Codable, Equatable {
        public var id: String
        public var prompt: String
        public var response: String
        public var label: RefusalLabel
        /// "benign" or "harmful".
        public var promptKind: String
        /// "train", "validation" or "test".
        public var split: String

        enum CodingKeys: String, CodingKey { case id, prompt, response, label, promptKind = "prompt_kind", split }

        public init(id: String, prompt: String, response: String, label: RefusalLabel, promptKind: String, split: String) {
            self.id = id
            self.prompt = prompt
            self.response = response
            self.label = label
            self.promptKind = promptKind
            self.split = split
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            prompt = try c.decode(String.self, forKey: .prompt)
            response = try c.decode(String.self, forKey: .response)
            let raw = try c.decode(String.self, forKey: .label)
            guard let label = RefusalLabel(rawValue: raw) else {
                throw DecodingError.dataCorruptedError(forKey: .label, in: c, debugDescription: "'\(raw)' is not one of \(RefusalLabel.allCases.map(\.rawValue))")
            }
            self.label = label
            promptKind = try c.decode(String.self, forKey: .promptKind)
            guard ["benign", "harmful"].contains(promptKind) else {
                throw DecodingError.dataCorruptedError(forKey: .promptKind, in: c, debugDescription: "'\(promptKind)' is not benign or harmful")
            }
            split = try c.decode(String.self, forKey: .split)
            guard ["train", "validation", "test"].contains(split) else {
                throw DecodingError.dataCorruptedError(forKey: .split, in: c, debugDescription: "'\(split)' is not train, validation or test")
            }
        }

        public var pair: ValuePair { ValuePair(prompt: prompt, response: response) }
    }

    public var valueExamples: [ValueExample]
    /// Answers that train the refusal head (the refusal set's train split, then the labelled pairs as compliance).
    public var refusalTraining: [(pair: ValuePair, label: RefusalLabel)]
    /// Requests (their words alone) that train the request head, harmful or not; one per
    /// normalised request text, evaluation prompts left out.
    public var requestTraining: [(request: String, harmful: Bool)] = []
    public var files: [DataFileRecord]
    /// Training rows dropped because their prompt is an evaluation prompt.
    public var droppedAsEvaluationPrompts = 0
    /// Training rows dropped as repeats of an earlier row (same normalised prompt and answer).
    public var droppedAsRepeats = 0

    public static let defaultLabelledPaths = ["data/train/ordinary_pairs.jsonl", "data/train/harmful_pairs.jsonl"]
    public static let defaultRefusalPath = "data/refusals/refusal_pairs.jsonl"
    /// Model answers labelled refusal / partial / compliance (the refusal set's format): their
    /// train split trains the refusal head only. The embedded model's own long, rambling answers
    /// look nothing like the written refusal set, and the head misread many as refusals without them.
    public static let defaultModelAnswerPaths = ["data/refusals/model_answers.jsonl"]
    /// Request-only files (`data/prompts`): benign requests and harmful requests with the values a
    /// harmful answer would oppose; only their `train` split is read.
    public static let defaultRequestPaths = ["data/prompts/benign_prompts.jsonl", "data/prompts/harm_prompts.jsonl"]
    /// Request-only files that train the request head only (not the value heads' input check):
    /// the value prompts, everyday dilemmas with a few harmful requests (`harm_area`); train split.
    public static let defaultRequestHeadPaths = ["data/prompts/value_prompts.jsonl"]
    /// Evaluation files whose prompts never train.
    public static let defaultEvaluationPaths = ["data/eval/ordinary_pairs.jsonl", "data/eval/harmful_pairs.jsonl"]

    /// Reads the refusal set (all splits).
    public static func loadRefusals(_ path: String) throws -> [RefusalExample] {
        try JSONLines.read(RefusalExample.self, from: path).map(\.value)
    }

    /// Reads the files. `labelled`: plain labelled JSONL (`LabelledPairs`); `refusals`: the
    /// refusal set; `evaluation`: JSONL files with a `prompt` field whose prompts must not train.
    /// `requestHeadOnly`: request files (the prompt sets' format) that train the request head only.
    public static func load(labelled: [String], refusals: String?, evaluation: [String], requests: [String] = [],
                            modelAnswers: [String] = [], requestHeadOnly: [String] = []) throws -> ProjectTrainingData {
        struct PromptOnly: Decodable { var prompt: String }
        var excluded = Set<String>()
        for path in evaluation {
            for (_, row) in try JSONLines.read(PromptOnly.self, from: path) { excluded.insert(DatasetSplit.normalizedKey(row.prompt)) }
        }
        let refusalSet = try refusals.map(loadRefusals) ?? []
        for r in refusalSet where r.split != "train" { excluded.insert(DatasetSplit.normalizedKey(r.prompt)) }

        var files: [DataFileRecord] = []
        func record(_ path: String, _ used: Int) throws -> DataFileRecord {
            DataFileRecord(name: URL(fileURLWithPath: path).lastPathComponent, fingerprint: try ModelFingerprint.of(path: path), trainingExamples: used)
        }
        var data = ProjectTrainingData(valueExamples: [], refusalTraining: [], files: [])
        var seen = Set<String>()
        var seenRequests = Set<String>()
        func request(_ text: String, harmful: Bool) {
            let key = DatasetSplit.normalizedKey(text)
            guard !excluded.contains(key), seenRequests.insert(key).inserted else { return }
            data.requestTraining.append((text, harmful))
        }
        func admit(_ pair: ValuePair) -> Bool {
            if excluded.contains(DatasetSplit.normalizedKey(pair.prompt)) { data.droppedAsEvaluationPrompts += 1; return false }
            guard seen.insert(DatasetSplit.normalizedKey(pair.prompt) + "\u{1}" + DatasetSplit.normalizedKey(pair.response)).inserted else {
                data.droppedAsRepeats += 1
                return false
            }
            return true
        }
        let all = [Float](repeating: 1, count: 10)
        var compliance: [ValuePair] = []
        for path in labelled {
            var used = 0
            for row in try LabelledPairs.loadLabels(path) where admit(row.pair) {
                used += 1
                data.valueExamples.append(ValueExample(pair: row.pair, targets: row.labels.flatMap { HeadTrainingSet.hardTarget($0) }, weights: all, kind: "answer"))
                data.valueExamples.append(ValueExample(pair: ValuePair(prompt: "", response: row.prompt),
                                                       targets: row.labels.flatMap { HeadTrainingSet.hardTarget(Swift.min($0, 0)) }, weights: all, kind: "request"))
                compliance.append(row.pair)
                request(row.prompt, harmful: HarmJudgement.protectedValues.contains { row.labels[$0.index] < 0 })
            }
            files.append(try record(path, used))
        }
        if let refusals {
            var used = 0
            for r in refusalSet where r.split == "train" && admit(r.pair) {
                used += 1
                request(r.prompt, harmful: r.promptKind == "harmful")
                data.refusalTraining.append((r.pair, r.label))
                if r.promptKind == "harmful" && r.label == .compliance {
                    data.valueExamples.append(labelledSubset(r.pair, [.benevolence: -1], kind: "harmful-compliance"))
                }
            }
            files.append(try record(refusals, used))
        }
        struct Request: Decodable { var prompt: String; var split: String; var values: [String]?; var harm_area: String? }
        for path in requestHeadOnly {
            var used = 0
            for (_, r) in try JSONLines.read(Request.self, from: path) where r.split == "train" {
                let before = data.requestTraining.count
                request(r.prompt, harmful: r.harm_area != nil)
                used += data.requestTraining.count - before
            }
            files.append(try record(path, used))
        }
        for path in requests {
            var used = 0
            for (line, r) in try JSONLines.read(Request.self, from: path) where r.split == "train" {
                let pair = ValuePair(prompt: "", response: r.prompt)
                request(r.prompt, harmful: r.harm_area != nil)
                guard admit(pair) else { continue }
                var labels: [SchwartzValue: Int] = [:]
                if r.harm_area != nil {
                    for name in r.values ?? [] {
                        guard let v = SchwartzValue(name: name) else {
                            throw JSONLinesError(path: path, line: line, message: "'\(name)' in values is not one of the ten values")
                        }
                        labels[v] = -1
                    }
                    guard !labels.isEmpty else { throw JSONLinesError(path: path, line: line, message: "a harmful request lists no values") }
                }
                // Every value is labelled: the listed ones opposed, the rest no connection.
                data.valueExamples.append(ValueExample(pair: pair, targets: SchwartzValue.allCases.flatMap { HeadTrainingSet.hardTarget(labels[$0] ?? 0) },
                                                       weights: all, kind: "request"))
                used += 1
            }
            files.append(try record(path, used))
        }
        for path in modelAnswers {
            var used = 0
            for r in try loadRefusals(path) where r.split == "train" && admit(r.pair) {
                data.refusalTraining.append((r.pair, r.label))
                used += 1
            }
            files.append(try record(path, used))
        }
        data.refusalTraining += compliance.map { ($0, RefusalLabel.compliance) }
        data.files = files
        return data
    }

    /// An example labelling only the given values (the others get weight 0).
    static func labelledSubset(_ pair: ValuePair, _ labels: [SchwartzValue: Int], kind: String) -> ValueExample {
        var targets = [Float](repeating: 0, count: 30), weights = [Float](repeating: 0, count: 10)
        for v in SchwartzValue.allCases {
            let label = labels[v] ?? 0
            targets.replaceSubrange(v.index * 3..<v.index * 3 + 3, with: HeadTrainingSet.hardTarget(label))
            if labels[v] != nil { weights[v.index] = 1 }
        }
        return ValueExample(pair: pair, targets: targets, weights: weights, kind: kind)
    }
}
