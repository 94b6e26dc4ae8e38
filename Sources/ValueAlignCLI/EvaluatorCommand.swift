import ArgumentParser
import Dispatch
import Evaluators
import Foundation
import LanguageModels
import ValueSpace

struct EvaluatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluator",
        abstract: "The trained value evaluator: score pairs, train its heads, test it on held-out FULCRA data, choose its design.",
        subcommands: [EvaluatorScore.self, EvaluatorTrain.self, EvaluatorTest.self, EvaluatorSweepCommand.self, PolicyTestCommand.self]
    )
}

/// Where the FULCRA data is read from.
struct EvaluatorDataOptions: ParsableArguments {
    @Option(help: "FULCRA labelled dialogues (JSONL).") var labelled = EvaluatorData.defaultLabelledPath
    @Option(help: "Answers scored by the FULCRA evaluator (JSONL; repeatable).") var scored: [String] = EvaluatorData.defaultScoredPaths

    func validate() throws {
        for path in [labelled] + scored where !FileManager.default.fileExists(atPath: path) {
            throw ValidationError("no such data file '\(path)' (set VALUEALIGN_DATA to the shared data folder, put it at ../shared/data beside the repository, or pass --labelled / --scored)")
        }
    }
}

/// Runs heavy synchronous work on its own thread, off Swift's cooperative pool.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async { continuation.resume(with: Result { try body() }) }
    }
}

/// The command line as typed (executable by name), recorded in trained weights.
var commandLineForRecord: String {
    (["valuealign"] + CommandLine.arguments.dropFirst()).map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
}

/// Feeds training / extraction progress to progress bars, one per stage.
final class StageProgress: @unchecked Sendable {
    private var stage = ""
    private var bar: ProgressBar?
    private var last: EvaluatorTraining.Progress?
    let quiet: Bool
    init(quiet: Bool) { self.quiet = quiet }

    func update(_ p: EvaluatorTraining.Progress) -> Bool {
        if p.stage != stage {
            finish()
            stage = p.stage
            bar = ProgressBar(total: p.total, label: p.stage, unit: p.stage.hasPrefix("training") ? "epochs" : "pairs", quiet: quiet)
        }
        last = p
        bar?.update(p.done, extra: p.detail)
        return true
    }

    func finish() {
        if let last, let bar { bar.update(last.done, extra: last.detail, final: true) }
        bar = nil
        last = nil
    }
}

struct EvaluatorScore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score", abstract: "Score one prompt/response pair: the value vector and per-value probabilities (JSON).")

    @Argument(help: "The prompt.") var prompt: String
    @Argument(help: "The response.") var response: String
    @Option(help: "Weights file (default: the shipped one).") var weights: String?
    @Option(name: .shortAndLong, help: "Base model (default: the embedded SmolLM2).") var model: String?

    func run() async throws {
        let (weights, model) = (self.weights, self.model)
        let evaluator = try await offPool { try TrainedValueEvaluator.load(weights: weights, model: model) }
        let result = try await evaluator.evaluate([ValuePair(prompt: prompt, response: response)])[0]
        var object: [String: Any] = ["evaluator": evaluator.name]
        object["vector"] = Dictionary(uniqueKeysWithValues: SchwartzValue.allCases.map { ($0.rawValue, (result.vector[$0] * 1000).rounded() / 1000) })
        object["probabilities"] = Dictionary(uniqueKeysWithValues: SchwartzValue.allCases.map { v in
            (v.rawValue, result.probabilities[v.index].map { ($0 * 1000).rounded() / 1000 })
        })
        object["labels"] = Dictionary(uniqueKeysWithValues: SchwartzValue.allCases.map { ($0.rawValue, result.labels[$0.index]) })
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        print(String(decoding: data, as: UTF8.self))
    }
}

struct EvaluatorTrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the evaluator's heads on the training side of the FULCRA split and write the weights file.",
        discussion: """
        Features are cached in --cache-dir (default .build-eval-cache), keyed by model, encoding and data, so a second \
        run only trains the heads. The same data, options and seed reproduce the same file byte for byte on the same \
        machine and build. The shipped weights were made with the command in Sources/Evaluators/Resources/README.md.
        """
    )

    @OptionGroup var data: EvaluatorDataOptions
    @Option(name: .shortAndLong, help: "Base model (default: the embedded SmolLM2).") var model: String?
    @Option(help: "Random seed of head initialisation and batch order.") var seed: UInt64 = 0
    @Option(help: "Weights file to write.") var out = EvaluatorWeights.bundledFileName
    @Option(help: "The evaluator's name in reports.") var name = "smollm2-probe"
    @Option(help: "Hidden-state layers read (Hugging Face index; comma-separated).") var layers = EvaluatorTraining.defaultLayers.map(String.init).joined(separator: ",")
    @Option(help: "Poolings: mean-response, last, mean (comma-separated).") var poolings = EvaluatorTraining.defaultPoolings.map(\.rawValue).joined(separator: ",")
    @Option(help: "Hidden units of the heads (0 = linear).") var hiddenUnits = EvaluatorTraining.defaultHeads.hiddenUnits
    @Option(help: "Training epochs.") var epochs = EvaluatorTraining.defaultHeads.epochs
    @Option(help: "Peak learning rate.") var learningRate = EvaluatorTraining.defaultHeads.learningRate
    @Option(help: "AdamW weight decay.") var weightDecay = EvaluatorTraining.defaultHeads.weightDecay
    @Option(help: "Class weighting power (0 none, 1 balanced).") var classWeightPower = EvaluatorTraining.defaultHeads.classWeightPower
    @Option(help: "Weight of a scored answer relative to a labelled dialogue (0 = labels only).") var scoredWeight = EvaluatorTraining.defaultScoredAnswerWeight
    @Option(help: "Cross-validation folds whose out-of-fold predictions set the decision offsets (0 = no offsets).") var calibrationFolds = EvaluatorTraining.defaultCalibrationFolds
    @Option(help: "Floor on out-of-fold opposed recall when setting the offsets (values with at least 20 opposed labels).") var minOpposedRecall = EvaluatorTraining.defaultMinimumOpposedRecall
    @Option(help: "Most prompt tokens read.") var maxPromptTokens = PairEncoding().maxPromptTokens
    @Option(help: "Most response tokens read.") var maxResponseTokens = PairEncoding().maxResponseTokens
    @Option(help: "The project's labelled training pairs ({prompt, response, labels} JSONL; repeatable; see ProjectTrainingData).")
    var projectLabelled: [String] = ProjectTrainingData.defaultLabelledPaths
    @Option(help: "The refusal set (its train split trains the refusal head; '' = no refusal head).") var refusals = ProjectTrainingData.defaultRefusalPath
    @Option(help: "Evaluation files whose prompts must never train (JSONL with 'prompt'; repeatable).") var evaluation: [String] = ProjectTrainingData.defaultEvaluationPaths
    @Option(help: "Request-only prompt files whose train split teaches the input check (repeatable).") var requests: [String] = ProjectTrainingData.defaultRequestPaths
    @Option(help: "Labelled model answers (the refusal set's format) whose train split trains the refusal head only (repeatable).")
    var modelAnswers: [String] = ProjectTrainingData.defaultModelAnswerPaths
    @Option(help: "Request files (the prompt sets' format) whose train split trains the request head only (repeatable).")
    var requestHeadPrompts: [String] = ProjectTrainingData.defaultRequestHeadPaths
    @Flag(help: "No request head (requests read alone are then judged harmful or not by the value heads).") var noRequestHead = false
    @Flag(help: "Train on FULCRA only (no project files, no refusal or request head): the recipe before issue 24.") var fulcraOnly = false
    @Option(help: "Pairs per forward pass while extracting.") var batchSize = 16
    @Option(help: "Feature cache folder.") var cacheDir = ".build-eval-cache"
    @Flag(help: "Extract features without reading or writing the cache.") var noCache = false
    @Flag(help: "No progress bars.") var quiet = false

    func validate() throws {
        if !fulcraOnly {
            for path in projectLabelled + evaluation + requests + (refusals.isEmpty ? [] : [refusals] + modelAnswers) + (noRequestHead ? [] : requestHeadPrompts) where !FileManager.default.fileExists(atPath: path) {
                throw ValidationError("no such data file '\(path)' (run from the repository root, pass the option, or --fulcra-only)")
            }
        }
        guard parsedLayers != nil else { throw ValidationError("--layers must be comma-separated integers, got '\(layers)'") }
        guard parsedPoolings != nil else { throw ValidationError("--poolings must be from \(HiddenPooling.allCases.map(\.rawValue)), got '\(poolings)'") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard scoredWeight >= 0 else { throw ValidationError("--scored-weight must be >= 0") }
        guard calibrationFolds == 0 || calibrationFolds >= 2 else { throw ValidationError("--calibration-folds must be 0 or at least 2") }
        guard (0...1).contains(minOpposedRecall) else { throw ValidationError("--min-opposed-recall must be in [0, 1]") }
    }

    var parsedLayers: [Int]? {
        let items = layers.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return items.isEmpty || items.contains(nil) ? nil : items.map { $0! }
    }
    var parsedPoolings: [HiddenPooling]? {
        let items = poolings.split(separator: ",").map { HiddenPooling(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
        return items.isEmpty || items.contains(nil) ? nil : items.map { $0! }
    }

    func run() async throws {
        var p = EvaluatorTraining.Parameters(modelPath: try ModelLocator.resolve(model))
        p.labelledPath = data.labelled
        p.scoredPaths = data.scored
        p.name = name
        p.layers = parsedLayers!
        p.poolings = parsedPoolings!
        p.encoding = PairEncoding(maxPromptTokens: maxPromptTokens, maxResponseTokens: maxResponseTokens)
        p.heads.hiddenUnits = hiddenUnits
        p.heads.epochs = epochs
        p.heads.learningRate = learningRate
        p.heads.weightDecay = weightDecay
        p.heads.classWeightPower = classWeightPower
        p.heads.seed = seed
        p.scoredAnswerWeight = scoredWeight
        p.calibrationFolds = calibrationFolds
        p.minimumOpposedRecall = minOpposedRecall
        p.projectLabelledPaths = fulcraOnly ? [] : projectLabelled
        p.refusalPath = fulcraOnly || refusals.isEmpty ? nil : refusals
        p.evaluationPaths = fulcraOnly ? [] : evaluation
        p.requestPaths = fulcraOnly ? [] : requests
        p.modelAnswerPaths = fulcraOnly ? [] : modelAnswers
        p.requestHeadPaths = requestHeadPrompts
        if fulcraOnly || noRequestHead { p.requestHead = nil }
        p.batchSize = batchSize
        p.cacheDirectory = noCache ? nil : cacheDir
        p.command = commandLineForRecord
        let parameters = p
        let progress = StageProgress(quiet: quiet)
        let out = self.out
        let (configuration, project, hasRefusalHead, hasRequestHead) = try await offPool {
            let result = try EvaluatorTraining(parameters).run(progress: progress.update)
            progress.finish()
            try EvaluatorWeights.save(heads: result.heads, refusalHead: result.refusalHead, requestHead: result.requestHead, configuration: result.configuration, to: out)
            return (result.configuration, result.project, result.refusalHead != nil, result.requestHead != nil)
        }
        let training = configuration.training!
        print("wrote \(out): layers \(configuration.layers), poolings \(configuration.poolings.map(\.rawValue)), \(configuration.featureWidth) features; trained on \(training.data[0].trainingExamples) labelled dialogues and \(training.data.count > 1 ? training.data[1].trainingExamples : 0) scored answers, seed \(training.seed)")
        if let project {
            let kinds = Dictionary(grouping: project.valueExamples, by: \.kind).mapValues(\.count).sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
            print("project data: \(kinds.joined(separator: ", ")) value examples; \(project.refusalTraining.count) refusal-head examples\(hasRefusalHead ? "" : " (no refusal head)"); \(project.requestTraining.count) request-head examples (\(project.requestTraining.filter(\.harmful).count) harmful)\(hasRequestHead ? "" : " (no request head)"); dropped \(project.droppedAsEvaluationPrompts) rows whose prompt is an evaluation prompt and \(project.droppedAsRepeats) repeats")
        }
    }
}

struct EvaluatorTest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Test an evaluator on the held-out split: per-value accuracy, macro-F1, opposed recall, confusion matrices, Pearson's r with the FULCRA evaluator."
    )

    @Option(help: "Labelled pairs: FULCRA dialogues, or JSONL of {prompt, response, labels: {value: -1|0|1}} (default: the FULCRA file).")
    var labelled: String?
    @Option(help: "Scored pairs: FULCRA-evaluator scored answers, or JSONL of {prompt, response, scores: {value: x}} (repeatable; default: the FULCRA files when --labelled is not given either).")
    var scored: [String] = []
    @Option(help: "Weights file (default: the shipped one).") var weights: String?
    @Option(name: .shortAndLong, help: "Base model (default: the embedded SmolLM2).") var model: String?
    @Option(help: "Pairs per forward pass.") var batchSize = 32
    @Option(help: "Write the report as JSON here.") var json: String?
    @Option(help: "heldout: the split the evaluator never trained on (for the project's FULCRA files); all: every example (for labelled files the evaluator was not trained on).")
    var split = "heldout"
    @Flag(help: "No progress bar.") var quiet = false

    /// The files read: the FULCRA defaults when neither option is given.
    var files: (labelled: String?, scored: [String]) {
        labelled == nil && scored.isEmpty ? (EvaluatorData.defaultLabelledPath, EvaluatorData.defaultScoredPaths) : (labelled, scored)
    }

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard ["heldout", "all"].contains(split) else { throw ValidationError("--split must be heldout or all, got '\(split)'") }
        let (l, s) = files
        for path in (l.map { [$0] } ?? []) + s where !FileManager.default.fileExists(atPath: path) {
            throw ValidationError("no such data file '\(path)' (set VALUEALIGN_DATA to the shared data folder, put it at ../shared/data beside the repository, or pass --labelled / --scored)")
        }
    }

    func run() async throws {
        let (weights, model, batchSize) = (self.weights, self.model, self.batchSize)
        let evaluator = try await offPool { try TrainedValueEvaluator.load(weights: weights, model: model, batchSize: batchSize) }
        let training = evaluator.configuration.training
        let fraction = training?.heldOutFraction ?? 0.15, seed = training?.heldOutSeed ?? 0
        let (labelledPath, scoredPaths) = files
        let allLabelled = try labelledPath.map(LabelledPairs.loadAnyLabels) ?? []
        let allScored = try scoredPaths.flatMap(LabelledPairs.loadAnyScores)
        let everything = split == "all"
        let labelled = everything ? allLabelled : allLabelled.filter { DatasetSplit.isHeldOut($0.prompt, fraction: fraction, seed: seed) }
        let scored = everything ? allScored : allScored.filter { DatasetSplit.isHeldOut($0.prompt, fraction: fraction, seed: seed) }
        guard !labelled.isEmpty || !scored.isEmpty else { throw ValidationError("no pairs to test on in \(([labelledPath].compactMap { $0 } + scoredPaths).joined(separator: ", "))") }
        let pairs = labelled.map(\.pair) + scored.map(\.pair)
        let bar = ProgressBar(total: pairs.count, label: "evaluating held-out pairs", unit: "pairs", quiet: quiet)
        var assessments: [ValueAssessment] = []
        let start = Date()
        // Chunks keep the progress bar moving; each chunk is batched inside the evaluator.
        for chunkStart in stride(from: 0, to: pairs.count, by: batchSize * 4) {
            assessments += try await evaluator.evaluate(Array(pairs[chunkStart..<min(chunkStart + batchSize * 4, pairs.count)]))
            bar.update(assessments.count)
        }
        bar.update(assessments.count, final: true)
        let seconds = Date().timeIntervalSince(start)
        var report = try EvaluatorReport.compute(
            evaluator: evaluator.name, labels: labelled.map(\.labels), predictions: Array(assessments[..<labelled.count]),
            scores: scored.map(\.scores), scoredPredictions: Array(assessments[labelled.count...]), labelThreshold: evaluator.configuration.labelThreshold)
        report.notes.append(everything ? "every example of the given files (--split all): only meaningful for files the evaluator was not trained on"
                                       : "held-out split: DatasetSplit.isHeldOut(prompt, fraction: \(fraction), seed: \(seed)); never trained on")
        report.notes.append(String(format: "%d pairs in %.1f s (%.1f pairs/s, batch %d)", pairs.count, seconds, Double(pairs.count) / seconds, batchSize))
        print(report.table(), terminator: "")
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
            print("wrote \(json)")
        }
    }
}

struct EvaluatorSweepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Choose the evaluator's design: cross-validate head settings on the training side (the held-out split is not read).",
        discussion: """
        Stage 'layers' tries every extracted layer with each pooling (linear heads); stage 'heads' tries head and \
        training settings, with calibrated decision offsets, on --layers and --poolings; stage 'file' runs the \
        candidates listed in --candidates (JSON). Candidates are ranked by mean macro-F1 + mean opposed recall + \
        mean Pearson's r (the last two over security, conformity, benevolence, universalism).
        """
    )

    enum Stage: String, ExpressibleByArgument, CaseIterable { case layers, heads, file }

    @OptionGroup var data: EvaluatorDataOptions
    @Option(name: .shortAndLong, help: "Base model (default: the embedded SmolLM2).") var model: String?
    @Option(help: "What to vary: layers or heads.") var stage: Stage = .layers
    @Option(help: "Layers for stage 'heads' (comma-separated; several = concatenated).") var layers = EvaluatorTraining.defaultLayers.map(String.init).joined(separator: ",")
    @Option(help: "Poolings for stage 'heads' (comma-separated).") var poolings = EvaluatorTraining.defaultPoolings.map(\.rawValue).joined(separator: ",")
    @Option(help: "Cross-validation folds.") var folds = 5
    @Option(help: "Pairs per forward pass while extracting (part of the cache key).") var batchSize = 16
    @Option(help: "Feature cache folder.") var cacheDir = ".build-eval-cache"
    @Option(help: "For stage 'file': a JSON array of candidates (layers, poolings, heads, scoredAnswerWeight, calibrate, minimumOpposedRecall).") var candidates: String?
    @Option(help: "Write all outcomes as JSON here.") var json: String?
    @Flag(help: "No progress bars.") var quiet = false

    func run() async throws {
        let modelPath = try ModelLocator.resolve(model)
        let data = try EvaluatorData.load(labelled: self.data.labelled, scored: self.data.scored)
        let layerCount = try Checkpoint.read(modelPath).configuration.layerCount
        let allLayers = Array(0...layerCount)
        let extractedPoolings: [HiddenPooling] = [.meanResponse, .last]
        let (batchSize, cacheDir, folds, stage, quiet) = (self.batchSize, self.cacheDir, self.folds, self.stage, self.quiet)
        let chosen = layers.split(separator: ",").compactMap { Int($0) }
        let chosenPoolings = poolings.split(separator: ",").compactMap { HiddenPooling(rawValue: String($0)) }
        guard !chosen.isEmpty, !chosenPoolings.isEmpty else { throw ValidationError("--layers and --poolings need at least one valid entry") }
        var fromFile: [EvaluatorSweep.Candidate] = []
        if stage == .file {
            guard let candidates else { throw ValidationError("--stage file needs --candidates FILE") }
            fromFile = try JSONDecoder().decode([EvaluatorSweep.Candidate].self, from: Data(contentsOf: URL(fileURLWithPath: candidates)))
        }
        let listed = fromFile
        let progress = StageProgress(quiet: quiet)
        let outcomes = try await offPool { () -> [EvaluatorSweep.Outcome] in
            // Every layer is extracted once (one full forward pass per pair) and cached.
            let tables = try FeatureTables.load(data: data, modelPath: modelPath, layers: allLayers, poolings: extractedPoolings, encoding: PairEncoding(),
                                                batchSize: batchSize, cacheDirectory: cacheDir, progress: progress.update)
            progress.finish()
            let sweep = try EvaluatorSweep(tables: tables, folds: folds)
            var candidates: [EvaluatorSweep.Candidate] = []
            // The layer stage compares features with cheap linear heads (class weights ^0.5, scored
            // answers at half weight), the settings its recorded results in docs/evaluator.md used.
            let base = HeadTrainingParameters()
            switch stage {
            case .layers:
                for l in allLayers {
                    for p in [[HiddenPooling.meanResponse], [.last], [.meanResponse, .last]] {
                        candidates.append(.init(layers: [l], poolings: p, heads: base, scoredAnswerWeight: 0.5))
                    }
                }
            case .heads:
                for hidden in [0, 256, 512] {
                    for power in [Float(0), 0.5, 1] {
                        for weight in [Float(1), 2] {
                            var h = base
                            h.hiddenUnits = hidden
                            h.classWeightPower = power
                            h.weightDecay = 1
                            candidates.append(.init(layers: chosen, poolings: chosenPoolings, heads: h, scoredAnswerWeight: weight, calibrate: true))
                        }
                    }
                }
            case .file:
                candidates = listed
            }
            var outcomes: [EvaluatorSweep.Outcome] = []
            let bar = ProgressBar(total: candidates.count, label: "cross-validating", unit: "settings", quiet: quiet)
            for c in candidates {
                let o = try sweep.evaluate(c)
                outcomes.append(o)
                bar.update(outcomes.count)
                if !quiet {
                    FileHandle.standardError.write(Data(String(format: "%@  acc %.3f  F1 %.3f  recall(-1) %.3f  r %.3f  goals %d  score %.3f\n",
                        c.label, o.meanAccuracy ?? Double.nan, o.meanMacroF1 ?? Double.nan, o.focusOpposedRecall ?? Double.nan, o.focusPearson ?? Double.nan, o.goalsMet, o.score).utf8))
                }
            }
            bar.update(outcomes.count, final: true)
            return outcomes
        }
        print("rank  score  mean acc  macro-F1  recall -1 (4)  r (4)  goals  setting")
        for (i, o) in outcomes.sorted(by: { $0.score > $1.score }).prefix(25).enumerated() {
            print(String(format: "%4d  %.3f  %8.3f  %8.3f  %13.3f  %5.3f  %5d  %@", i + 1, o.score, o.meanAccuracy ?? Double.nan, o.meanMacroF1 ?? Double.nan,
                         o.focusOpposedRecall ?? Double.nan, o.focusPearson ?? Double.nan, o.goalsMet, o.candidate.label))
        }
        if let best = outcomes.max(by: { $0.score < $1.score }) {
            print("\nbest setting, cross-validated on the training side:\n" + best.report.table())
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try encoder.encode(outcomes).write(to: URL(fileURLWithPath: json))
            print("wrote \(json)")
        }
    }
}
