import ArgumentParser
import Evaluators
import Foundation
import LanguageModels
import ValueSpace

/// Which evaluator scores answers.
struct EvaluatorOptions: ParsableArguments {
    @Option(help: "trained (the shipped probe on the embedded model), judge (an LLM judge) or lexicon (keyword stems; fast, crude).")
    var evaluator = "trained"

    @Option(help: "Trained evaluator weights (default: the shipped ones).")
    var evaluatorWeights: String?

    @Option(help: "Judge model: a local GGUF/HF path or 'embedded', or with --judge-url the served model's name.")
    var judgeModel: String?

    @Option(help: "OpenAI-compatible server for the judge, e.g. http://127.0.0.1:8000/v1.")
    var judgeURL: String?

    @Flag(help: "Ask the judge one value at a time (ten calls per answer).")
    var judgePerValue = false

    func validate() throws {
        guard ["trained", "judge", "lexicon"].contains(evaluator) else { throw ValidationError("--evaluator must be trained, judge or lexicon, got '\(evaluator)'") }
        if judgeURL != nil, judgeModel == nil { throw ValidationError("--judge-url needs --judge-model naming the served model") }
    }

    func make() throws -> any ValueEvaluator {
        if evaluator == "trained" { return try TrainedValueEvaluator.load(weights: evaluatorWeights) }
        if evaluator == "lexicon" { return LexiconValueEvaluator() }
        return LLMJudgeEvaluator(backend: try auxiliaryBackend(model: judgeModel, url: judgeURL), mode: judgePerValue ? .perValue : .allValues)
    }
}

struct EvaluateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Measure a model's value profile: answer a prompt set, score the answers, aggregate with bootstrap intervals.",
        discussion: "Writes responses.jsonl (resumable), assessments.jsonl, profile.json, summary.json, report.html and report.md into --out."
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var generation: GenerationOptions
    @OptionGroup var evaluatorOptions: EvaluatorOptions

    @Option(help: "Prompts file (JSONL with prompt or messages).") var prompts: String
    @Option(help: "Only prompts with this split field (train, heldout).") var split: String?
    @Option(help: "At most this many prompts.") var limit: Int?
    @Option(help: "Output folder.") var out: String
    @Option(help: "Target profile: a preset name or a JSON file.") var target = "basealign-ideal"
    @Option(help: "Reference profiles to draw in the report (repeatable).") var reference: [String] = []
    @Option(help: "Prompts per generation batch.") var batchSize = 16
    @Option(help: "Bootstrap resamples.") var resamples = 2000
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: prompts) else { throw ValidationError("--prompts: no such file '\(prompts)'") }
        guard batchSize >= 1, resamples >= 100 else { throw ValidationError("--batch-size must be >= 1 and --resamples >= 100") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        var parameters = ProfileMeasurement.Parameters(promptsPath: prompts, outputDirectory: out, target: try ProfileStore.resolve(target))
        parameters.references = try reference.map { try ProfileStore.resolve($0) }
        parameters.generation = generation.parameters
        parameters.batchSize = batchSize
        parameters.split = split
        parameters.limit = limit
        parameters.bootstrap = BootstrapParameters(resamples: resamples, seed: generation.seed ?? 0)
        let backend = try modelOptions.makeBackend()
        let evaluator = try evaluatorOptions.make()
        nonisolated(unsafe) var bar: ProgressBar?
        nonisolated(unsafe) var stageName = ""
        let quiet = quiet
        let summary = try await ProfileMeasurement(parameters).run(backend: backend, evaluator: evaluator) { stage in
            let (name, done, total): (String, Int, Int) = switch stage {
            case let .generating(d, t): ("generate", d, t)
            case let .evaluating(d, t): ("evaluate", d, t)
            }
            if name != stageName { bar = ProgressBar(total: total, label: name, unit: "answers", quiet: quiet); stageName = name }
            bar?.update(done, final: done == total)
        }
        print("model      \(summary.model)\nevaluator  \(summary.evaluator)\nanswers    \(summary.answers)")
        print("BaseAlign distance to \(summary.target.name): \(summary.distance.formatted())")
        for v in SchwartzValue.allCases {
            let m = summary.profile.vector[v]
            let ci = summary.profile.intervals[v].map { String(format: " [%.2f, %.2f]", $0.lower, $0.upper) } ?? ""
            print(String(format: "  %-15@ %+.3f", v.rawValue as NSString, m) + ci)
        }
        print("wrote \(out)/report.html, profile.json, summary.json")
    }
}
