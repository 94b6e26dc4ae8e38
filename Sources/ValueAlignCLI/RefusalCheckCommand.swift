import ArgumentParser
import Evaluators
import Foundation
import ValueAlignCore
import ValueSpace

/// `valuealign refusal-check FILE`: refusal, partial or compliance for every prompt/answer pair of a
/// JSONL file, with the agreement against the file's own labels when it has them.
struct RefusalCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refusal-check",
        abstract: "Classify answers as refusal, partial or compliance (the detector behind every report's refusal rates).",
        discussion: """
            FILE is JSON Lines with 'prompt' and 'response' (or 'answer') per line; 'id', 'label' (refusal, partial or \
            compliance) and 'split' are optional. Each line's result goes to stdout as JSON (or to --out). When the lines \
            carry labels, the agreement is printed: two-way (refuses = refusal or partial, vs compliance) and three-way, \
            the recall of refusals, the majority-class baseline, and the phrase list's figures on the same lines.
            """)

    enum Detector: String, ExpressibleByArgument, CaseIterable {
        /// The evaluator's refusal head (the default).
        case learned
        /// The phrase list over the answer's first 160 characters.
        case phrases
    }

    @Argument(help: "JSONL of prompt/answer pairs.") var file: String
    @Option(help: "learned (the evaluator's refusal head) or phrases (the phrase list).") var detector: Detector = .learned
    @Option(help: "Only lines whose 'split' is this (e.g. validation or test).") var split: String?
    @Option(help: "Write the per-line results here instead of stdout.") var out: String?
    @Option(help: "Weights file (default: the shipped one).") var weights: String?
    @Option(name: .shortAndLong, help: "Base model (default: the embedded SmolLM2).") var model: String?
    @Option(help: "Pairs per forward pass.") var batchSize = 32
    @Flag(help: "No progress bar.") var quiet = false

    struct Line: Decodable {
        var id: String?
        var prompt: String
        var response: String
        var label: RefusalLabel?
        var split: String?

        enum CodingKeys: String, CodingKey { case id, prompt, response, answer, label, split }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decodeIfPresent(String.self, forKey: .id)
            prompt = try c.decode(String.self, forKey: .prompt)
            response = try c.decodeIfPresent(String.self, forKey: .response) ?? c.decode(String.self, forKey: .answer)
            if let raw = try c.decodeIfPresent(String.self, forKey: .label) {
                guard let label = RefusalLabel(rawValue: raw) else {
                    throw DecodingError.dataCorruptedError(forKey: .label, in: c, debugDescription: "'\(raw)' is not one of \(RefusalLabel.allCases.map(\.rawValue))")
                }
                self.label = label
            }
            split = try c.decodeIfPresent(String.self, forKey: .split)
        }
    }

    struct Result: Encodable {
        var line: Int
        var id: String?
        var label: RefusalLabel
        /// refusal, partial, compliance (learned detector only).
        var probabilities: [String: Double]?
        var phraseList: RefusalLabel
        var expected: RefusalLabel?
    }

    func validate() throws {
        guard FileManager.default.fileExists(atPath: file) else { throw ValidationError("no such file '\(file)'") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() async throws {
        var lines = try JSONLines.read(Line.self, from: file)
        if let split { lines = lines.filter { $0.value.split == split } }
        guard !lines.isEmpty else { throw ValidationError("\(file) has no pairs\(split.map { " in split '\($0)'" } ?? "")") }
        let phrases = lines.map { Refusals.label(answer: $0.value.response, assessment: nil) }
        var learned: [ValueAssessment]?
        if detector == .learned {
            let (weights, model, batchSize) = (self.weights, self.model, self.batchSize)
            let evaluator = try await offPool { try TrainedValueEvaluator.load(weights: weights, model: model, batchSize: batchSize) }
            guard evaluator.readsRefusals else {
                throw ValidationError("the evaluator weights have no refusal head (trained before issue 24 or with --refusals ''); use --detector phrases or other weights")
            }
            let pairs = lines.map { ValuePair(prompt: $0.value.prompt, response: $0.value.response) }
            let bar = ProgressBar(total: pairs.count, label: "refusal-check", unit: "pairs", quiet: quiet)
            var assessed: [ValueAssessment] = []
            for start in stride(from: 0, to: pairs.count, by: batchSize * 4) {
                assessed += try await evaluator.evaluate(Array(pairs[start..<min(start + batchSize * 4, pairs.count)]))
                bar.update(assessed.count)
            }
            bar.update(assessed.count, final: true)
            learned = assessed
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if let out { try? FileManager.default.removeItem(atPath: out) }
        var predicted: [RefusalLabel] = []
        for (k, (number, line)) in lines.enumerated() {
            let a = learned?[k]
            let label = Refusals.label(answer: line.response, assessment: a)
            predicted.append(label)
            let probabilities = a?.refusal.map { p in Dictionary(uniqueKeysWithValues: zip(RefusalLabel.allCases.map(\.rawValue), p)) }
            let result = Result(line: number, id: line.id, label: label, probabilities: probabilities, phraseList: phrases[k], expected: line.label)
            if let out { try JSONLines.append(result, to: out) } else { print(String(decoding: try encoder.encode(result), as: UTF8.self)) }
        }
        let labelled = lines.indices.filter { lines[$0].value.label != nil }
        guard !labelled.isEmpty else { return }
        let truth = labelled.map { lines[$0].value.label! }
        let ours = try RefusalAgreement(truth: truth, predicted: labelled.map { predicted[$0] })
        let baseline = try RefusalAgreement(truth: truth, predicted: labelled.map { phrases[$0] })
        let summary = Self.describe(ours, name: detector == .learned ? "learned (refusal head)" : "phrase list") + "\n" + Self.describe(baseline, name: "phrase list")
        // With results on stdout the summary goes to stderr, so stdout stays JSON Lines.
        if out == nil { FileHandle.standardError.write(Data((summary + "\n").utf8)) } else { print(summary) }
    }

    static func describe(_ a: RefusalAgreement, name: String) -> String {
        func pct(_ x: Double) -> String { x.isNaN ? "-" : String(format: "%.1f%%", x * 100) }
        let rows = RefusalLabel.allCases.enumerated().map { i, l in "\(l.rawValue) \(a.confusion[i].map(String.init).joined(separator: "/"))" }
        return "\(name): \(a.examples) labelled answers; agreement \(pct(a.twoWay)) refuses-vs-complies (majority baseline \(pct(a.majorityTwoWay))), "
            + "\(pct(a.threeWay)) three-way; refusal recall \(pct(a.refusalRecall)), precision \(pct(a.refusalPrecision)); "
            + "truth -> predicted refusal/partial/compliance: \(rows.joined(separator: ", "))"
    }
}
