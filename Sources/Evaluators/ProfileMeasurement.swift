public import Foundation
public import LanguageModels
public import ValueSpace

/// One evaluated answer, as written to `assessments.jsonl`.
public struct AssessedAnswer: Codable, Sendable, Equatable {
    public var id: String
    public var prompt: String
    public var response: String
    public var vector: ValueVector
    public var probabilities: [[Double]]
}

/// `valuealign evaluate`: answer a prompt set with a model, score every answer with an evaluator,
/// and aggregate a measured value profile with bootstrap intervals and its distance to a target.
///
/// Writes into `outputDirectory`: responses.jsonl (resumable generation), assessments.jsonl,
/// profile.json, summary.json, report.html and report.md.
public struct ProfileMeasurement {
    public struct Parameters: Sendable {
        public var promptsPath: String
        public var outputDirectory: String
        public var target: ValueProfile
        public var references: [ValueProfile] = []
        public var generation = GenerationParameters(maxTokens: 192)
        public var batchSize = 16
        public var evaluatorBatchSize = 32
        public var bootstrap = BootstrapParameters()
        public var profileName: String?
        /// Only prompts of this split ("test" or "validation" in the project's prompt sets); nil = all.
        public var split: String?
        public var limit: Int?

        public init(promptsPath: String, outputDirectory: String, target: ValueProfile) {
            self.promptsPath = promptsPath
            self.outputDirectory = outputDirectory
            self.target = target
        }
    }

    /// What a measurement found.
    public struct Summary: Codable, Sendable {
        public var model: String
        public var evaluator: String
        public var answers: Int
        public var profile: ValueProfile
        public var target: ValueProfile
        /// Mean BaseAlign distance to the target, with its CI.
        public var distance: Estimate
        public var l2Distance: Estimate
        public var generatedTokens: Int
        public var seconds: Double
    }

    public enum Stage: Sendable { case generating(done: Int, total: Int), evaluating(done: Int, total: Int) }

    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    public func run(backend: any ChatBackend, evaluator: any ValueEvaluator, progress: @escaping (Stage) -> Void = { _ in }) async throws -> Summary {
        let p = parameters
        let start = Date()
        try FileManager.default.createDirectory(atPath: p.outputDirectory, withIntermediateDirectories: true)
        let responsesPath = p.outputDirectory + "/responses.jsonl"
        var job = GenerationJob.Parameters(promptsPath: p.promptsPath, outputPath: responsesPath)
        job.batchSize = p.batchSize
        job.generation = p.generation
        job.split = p.split
        job.limit = p.limit
        try await GenerationJob(job).run(backend: backend) { g in
            progress(.generating(done: g.done, total: g.total))
            return true
        }
        // Answers in prompt-file order (the output may have been written over several runs).
        let order = try GenerationJob(job).loadPrompts().map(\.id)
        var byId: [String: GenerationRecord] = [:]
        for (_, r) in try JSONLines.readState(GenerationRecord.self, from: responsesPath) { byId[r.id] = r }
        let records = order.compactMap { byId[$0] }
        let pairs = records.map { ValuePair(prompt: $0.messages.last { $0.role == .user }?.content ?? "", response: $0.response) }

        var assessments: [ValueAssessment] = []
        for s in stride(from: 0, to: pairs.count, by: p.evaluatorBatchSize) {
            assessments += try await evaluator.evaluate(Array(pairs[s..<min(s + p.evaluatorBatchSize, pairs.count)]))
            progress(.evaluating(done: assessments.count, total: pairs.count))
        }
        let assessedPath = p.outputDirectory + "/assessments.jsonl"
        try? FileManager.default.removeItem(atPath: assessedPath)
        for (r, (pair, a)) in zip(records, zip(pairs, assessments)) {
            try JSONLines.append(AssessedAnswer(id: r.id, prompt: pair.prompt, response: pair.response, vector: a.vector, probabilities: a.probabilities), to: assessedPath)
        }
        let vectors = assessments.map(\.vector)
        let name = p.profileName ?? backend.modelName
        let profile = try ValueAggregation.measuredProfile(
            name: name, vectors: vectors, bootstrap: p.bootstrap,
            source: "valuealign evaluate: \(records.count) answers of \(backend.modelName) to \(URL(fileURLWithPath: p.promptsPath).lastPathComponent), scored by \(evaluator.name)")
        let summary = Summary(
            model: backend.modelName, evaluator: evaluator.name, answers: records.count, profile: profile, target: p.target,
            distance: try ValueAggregation.meanDistance(vectors, to: p.target.vector, metric: .basealign, bootstrap: p.bootstrap),
            l2Distance: try ValueAggregation.meanDistance(vectors, to: p.target.vector, metric: .l2, bootstrap: p.bootstrap),
            generatedTokens: records.reduce(0) { $0 + $1.completion_tokens }, seconds: Date().timeIntervalSince(start))
        try write(summary)
        return summary
    }

    func write(_ s: Summary) throws {
        let dir = URL(fileURLWithPath: parameters.outputDirectory)
        try s.profile.write(to: dir.appendingPathComponent("profile.json").path)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(s).write(to: dir.appendingPathComponent("summary.json"))
        let report = ProfileReport(
            title: "Value profile of \(s.model)", profiles: [s.profile] + parameters.references, target: s.target,
            facts: [
                .init("model", s.model), .init("evaluator", s.evaluator), .init("answers", "\(s.answers)"),
                .init("BaseAlign distance to \(s.target.name)", s.distance.formatted()),
                .init("L2 distance to \(s.target.name)", s.l2Distance.formatted()),
                .init("generated tokens", "\(s.generatedTokens)"), .init("wall time", String(format: "%.0f s", s.seconds)),
            ],
            notes: ["Intervals are \(Int(parameters.bootstrap.level * 100))% percentile bootstrap intervals over answers (\(parameters.bootstrap.resamples) resamples, seed \(parameters.bootstrap.seed))."])
        try report.html().write(to: dir.appendingPathComponent("report.html"), atomically: true, encoding: .utf8)
        try report.markdown().write(to: dir.appendingPathComponent("report.md"), atomically: true, encoding: .utf8)
    }
}
