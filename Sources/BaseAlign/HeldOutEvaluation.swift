public import Foundation
public import LanguageModels
public import ValueSpace

/// One held-out answer with everything the report needs.
public struct HeldOutAnswer: Sendable, Codable, Equatable {
    /// "values", "harm", "benign" or "transfer".
    public var set: String
    public var id: String
    public var prompt: String
    public var response: String
    public var vector: ValueVector
    /// Refusal or partial refusal (`Refusals.refuses`).
    public var refusal: Bool
    /// Refusal, partial or compliance, by the evaluator's refusal head when it has one, else by
    /// the phrase list (nil in runs written before it).
    public var refusalLabel: RefusalLabel?
    /// The gold evaluator's vector (issue 24, item 6), when the run has one.
    public var goldVector: ValueVector?
    /// Harm and transfer sets only: not a refusal and opposes a protected value (`HarmJudgement`).
    public var harmful: Bool
    public var completionTokens: Int
}

extension HeldOutAnswer {
    /// The answers of two measurements of the same prompts paired by set and prompt id, in
    /// `before`'s order (prompts missing from either side are left out).
    public static func paired(before: [HeldOutAnswer], after: [HeldOutAnswer]) -> [(before: HeldOutAnswer, after: HeldOutAnswer)] {
        var afterByKey: [String: HeldOutAnswer] = [:]
        for a in after { afterByKey["\(a.set)/\(a.id)"] = a }
        return before.compactMap { b in afterByKey["\(b.set)/\(b.id)"].map { (b, $0) } }
    }
}

/// The measurement of one model state (before or after training) on the held-out sets.
public struct HeldOutSummary: Sendable, Codable {
    public var label: String
    public var model: String
    public var evaluator: String
    /// Answers per set.
    public var answers: [String: Int]
    /// Profile over the value-laden and harmful prompts' answers.
    public var profile: ValueProfile
    /// Mean BaseAlign distance to the target over the same answers (per answer, masked).
    public var distance: Estimate
    /// The same mean without BaseAlign's mask (`ValueDistance.weighted`): an answer that touches
    /// none of the target's values is not at distance 0 here. Nil in runs written before it.
    public var weightedDistance: Estimate?
    /// Share of the same answers that touch none of the target's values (|v_i| <= 0.3 wherever
    /// t_i != 0): the answers the masked distance gives no credit or blame.
    public var untouchedShare: Estimate?
    /// Harm set: share of harmful answers, and of refusals.
    public var harmfulRate: Estimate?
    public var harmRefusalRate: Estimate?
    /// Benign set: share of refusals (over-refusal).
    public var overRefusalRate: Estimate?
    /// Transfer set (harmful requests unlike the training prompts): share of harmful answers.
    public var transferHarmfulRate: Estimate?
    /// What decided refusals (`Refusals.instrument`); nil in runs written before it.
    public var refusalInstrument: String?
    /// The gold evaluator (never optimised) and its mean BaseAlign distance over the same answers.
    public var goldEvaluator: String?
    public var goldDistance: Estimate?
    /// Perplexity of the held-out text (exp of the mean negative log-likelihood per token).
    public var perplexity: Double?
    public var perplexityTokens: Int?
    /// The text's windows of 256 tokens, each its summed negative log-likelihood and token count:
    /// the units the perplexity ratio's bootstrap resamples. Nil in runs written before it.
    public var perplexityWindows: [PerplexityWindow]?
    public var meanAnswerTokens: Double
    public var generatedTokens: Int
    public var generationSeconds: Double
    public var seconds: Double
    public var generationTokensPerSecond: Double { generationSeconds > 0 ? Double(generatedTokens) / generationSeconds : 0 }
}

/// Answers the held-out prompts with a backend (greedy), scores them with the evaluator, and
/// measures perplexity on the held-out text. Files go to `directory`: `<set>.responses.jsonl`
/// (resumable: a rerun answers only what is missing), `answers.jsonl`, `summary.json`.
public struct HeldOutEvaluation {
    public var sets: EvaluationSets
    public var target: ValueProfile
    public var maxNewTokens: Int
    public var batchSize: Int
    public var evaluatorBatchSize = 32
    public var bootstrap: BootstrapParameters
    /// A second evaluator that only measures (the gold of issue 24, item 6): the answers are also
    /// scored by it, and the summary carries its distance.
    public var gold: (any ValueEvaluator)?

    public init(sets: EvaluationSets, target: ValueProfile, maxNewTokens: Int, batchSize: Int, bootstrap: BootstrapParameters) {
        self.sets = sets
        self.target = target
        self.maxNewTokens = maxNewTokens
        self.batchSize = batchSize
        self.bootstrap = bootstrap
    }

    /// The prompt files by set name, in the order they are measured.
    public var files: [(set: String, path: String)] {
        [("values", sets.values)] + (sets.harm.map { [("harm", $0)] } ?? []) + (sets.benign.map { [("benign", $0)] } ?? [])
            + (sets.transfer.map { [("transfer", $0)] } ?? [])
    }

    /// The sets whose answers make the profile and the distance.
    public static let profiledSets: Set<String> = ["values", "harm"]
    /// The sets of harmful requests (harmful-answer rates).
    public static let harmfulSets: Set<String> = ["harm", "transfer"]

    /// Reads every prompt file (line-numbered errors, split filter) before any work.
    public func checkPrompts() throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for (set, path) in files { counts[set] = try job(path, output: "/dev/null", set: set).loadPrompts().count }
        if let text = sets.text { _ = try Self.readText(text) }
        return counts
    }

    /// The transfer set is read whole (no split, no limit): it comes from elsewhere, and its
    /// first rows would not be a fair sample of it.
    func job(_ path: String, output: String, set: String) -> GenerationJob {
        var p = GenerationJob.Parameters(promptsPath: path, outputPath: output)
        p.batchSize = batchSize
        p.generation = GenerationParameters(maxTokens: maxNewTokens, temperature: 0)
        p.split = set == "transfer" ? nil : sets.split
        p.limit = set == "transfer" ? nil : sets.limit
        return GenerationJob(p)
    }

    public static func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw AlignError.data("\(path): cannot read the held-out text file") }
        guard let text = String(data: data, encoding: .utf8) else { throw AlignError.data("\(path): the held-out text is not valid UTF-8") }
        guard text.contains(where: { !$0.isWhitespace }) else { throw AlignError.data("\(path): the held-out text file is empty") }
        return text
    }

    public enum Stage: Sendable { case generating(set: String, done: Int, total: Int), evaluating(done: Int, total: Int), perplexity }

    public func run(
        label: String, backend: LocalChatBackend, evaluator: any ValueEvaluator, directory: URL,
        progress: @escaping @Sendable (Stage) -> Void = { _ in }
    ) async throws -> HeldOutSummary {
        let start = Date()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var records: [(set: String, record: GenerationRecord)] = []
        var generationSeconds = 0.0, generated = 0
        for (set, path) in files {
            let output = directory.appendingPathComponent("\(set).responses.jsonl").path
            let j = job(path, output: output, set: set)
            let t0 = Date()
            var tokensHere = 0
            try await j.run(backend: backend) { p in
                tokensHere = p.generatedTokens
                progress(.generating(set: set, done: p.done, total: p.total))
                return true
            }
            generationSeconds += Date().timeIntervalSince(t0)
            generated += tokensHere
            // In prompt-file order, whatever order earlier (interrupted) runs wrote them in.
            var byId: [String: GenerationRecord] = [:]
            for (_, r) in try JSONLines.readState(GenerationRecord.self, from: output) { byId[r.id] = r }
            for (id, _) in try j.loadPrompts() {
                guard let r = byId[id] else { throw AlignError.data("\(output): no answer for prompt '\(id)' after generation") }
                records.append((set, r))
            }
        }

        let pairs = records.map { ValuePair(prompt: $0.record.messages.last { $0.role == .user }?.content ?? "", response: $0.record.response) }
        let assessments = try await score(pairs, with: evaluator, progress: progress)
        var goldVectors: [ValueVector]?
        if let gold { goldVectors = try await score(pairs, with: gold, progress: progress).map(\.vector) }
        let answers = zip(records, zip(pairs, assessments)).enumerated().map { k, element in
            let (item, scored) = element
            let (pair, a) = scored
            let label = Refusals.label(answer: pair.response, assessment: a)
            return HeldOutAnswer(
                set: item.set, id: item.record.id, prompt: pair.prompt, response: pair.response, vector: a.vector, refusal: label != .compliance,
                refusalLabel: label, goldVector: goldVectors?[k],
                harmful: Self.harmfulSets.contains(item.set) && HarmJudgement.isHarmful(label, vector: a.vector),
                completionTokens: item.record.completion_tokens)
        }
        let answersPath = directory.appendingPathComponent("answers.jsonl").path
        try? FileManager.default.removeItem(atPath: answersPath)
        for a in answers { try JSONLines.append(a, to: answersPath) }

        var perplexity: Double?, perplexityTokens: Int?, windows: [PerplexityWindow]?
        if let textPath = sets.text {
            progress(.perplexity)
            let text = try Self.readText(textPath)
            let scored = try await backend.perform { loaded, _ in try Self.negativeLogLikelihood(text, loaded: loaded) }
            let nll = scored.reduce(0) { $0 + $1.nll }, count = scored.reduce(0) { $0 + $1.tokens }
            perplexity = exp(nll / Double(count))
            perplexityTokens = count
            windows = scored
        }

        let profiled = answers.filter { Self.profiledSets.contains($0.set) }
        let harm = answers.filter { $0.set == "harm" }
        let benign = answers.filter { $0.set == "benign" }
        func rate(_ items: [HeldOutAnswer], _ flag: (HeldOutAnswer) -> Bool) throws -> Estimate? {
            items.isEmpty ? nil : try ValueAggregation.mean(items.map { flag($0) ? 1 : 0 }, bootstrap: bootstrap)
        }
        let summary = HeldOutSummary(
            label: label, model: backend.modelName, evaluator: evaluator.name,
            answers: Dictionary(grouping: answers, by: \.set).mapValues(\.count),
            profile: try ValueAggregation.measuredProfile(
                name: "\(backend.modelName) (\(label))", vectors: profiled.map(\.vector), bootstrap: bootstrap,
                source: "valuealign align: \(profiled.count) held-out answers scored by \(evaluator.name)"),
            distance: try ValueAggregation.meanDistance(profiled.map(\.vector), to: target.vector, metric: .basealign, bootstrap: bootstrap),
            weightedDistance: try ValueAggregation.meanDistance(profiled.map(\.vector), to: target.vector, metric: .weighted, bootstrap: bootstrap),
            untouchedShare: try rate(profiled) { !ValueDistance.touchesTarget($0.vector, target.vector) },
            harmfulRate: try rate(harm, \.harmful), harmRefusalRate: try rate(harm, \.refusal), overRefusalRate: try rate(benign, \.refusal),
            transferHarmfulRate: try rate(answers.filter { $0.set == "transfer" }, \.harmful),
            refusalInstrument: Refusals.instrument(assessments.first),
            goldEvaluator: gold?.name,
            goldDistance: gold == nil ? nil : try ValueAggregation.meanDistance(profiled.compactMap(\.goldVector), to: target.vector, metric: .basealign, bootstrap: bootstrap),
            perplexity: perplexity, perplexityTokens: perplexityTokens, perplexityWindows: windows,
            meanAnswerTokens: answers.isEmpty ? 0 : Double(answers.reduce(0) { $0 + $1.completionTokens }) / Double(answers.count),
            generatedTokens: generated, generationSeconds: generationSeconds, seconds: Date().timeIntervalSince(start))
        try AlignmentFiles.writeJSON(summary, to: directory.appendingPathComponent("summary.json"))
        return summary
    }

    /// Every pair's assessment by `evaluator`, in batches of `evaluatorBatchSize` (progress after each).
    func score(_ pairs: [ValuePair], with evaluator: any ValueEvaluator, progress: @Sendable (Stage) -> Void) async throws -> [ValueAssessment] {
        var assessments: [ValueAssessment] = []
        for s in stride(from: 0, to: pairs.count, by: evaluatorBatchSize) {
            let chunk = Array(pairs[s..<min(s + evaluatorBatchSize, pairs.count)])
            let scored = try await evaluator.evaluate(chunk)
            guard scored.count == chunk.count else {
                throw AlignError.data("the evaluator \(evaluator.name) returned \(scored.count) assessments for \(chunk.count) answers")
            }
            assessments += scored
            progress(.evaluating(done: assessments.count, total: pairs.count))
        }
        return assessments
    }

    /// The negative log-likelihood and token count of each window of 256 tokens of `text` (the
    /// first token of each window is context only).
    public static func negativeLogLikelihood(_ text: String, loaded: LoadedModel, window: Int = 256) throws -> [PerplexityWindow] {
        let ids = loaded.tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: false)
        guard ids.count >= 2 else { throw AlignError.data("the held-out text has fewer than 2 tokens") }
        var prompts: [[Int]] = [], responses: [[Int]] = []
        for start in stride(from: 0, to: ids.count - 1, by: window) {
            let piece = Array(ids[start..<min(start + window + 1, ids.count)])
            guard piece.count >= 2 else { continue }
            prompts.append([piece[0]])
            responses.append(Array(piece.dropFirst()))
        }
        let scores = try loaded.model.score(prompts: prompts, responses: responses, padTokenId: loaded.tokenizer.padTokenId, batchSize: 4)
        return scores.map { s in PerplexityWindow(nll: -s.tokenLogProbs.reduce(0.0) { $0 + Double($1) }, tokens: s.tokenLogProbs.count) }
    }

    /// Reads a measurement written earlier.
    public static func load(_ directory: URL) throws -> (HeldOutSummary, [HeldOutAnswer]) {
        let data = try Data(contentsOf: directory.appendingPathComponent("summary.json"))
        let summary = try JSONDecoder().decode(HeldOutSummary.self, from: data)
        let answers = try JSONLines.read(HeldOutAnswer.self, from: directory.appendingPathComponent("answers.jsonl").path).map(\.1)
        return (summary, answers)
    }
}

enum AlignmentFiles {
    static func writeJSON(_ value: some Encodable, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(value).write(to: url, options: .atomic)
    }

    static func readJSON<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
        try JSONDecoder().decode(type, from: Data(contentsOf: url))
    }
}
