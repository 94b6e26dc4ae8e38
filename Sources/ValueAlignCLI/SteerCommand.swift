import ArgumentParser
import BaseAlign
import Evaluators
import Foundation
import LanguageModels
import ValueSpace

/// `valuealign steer`: steering vectors that move a model's values without training (issue 27).
struct SteerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "steer",
        abstract: "Steering vectors: build them from contrast pairs, sweep layer and strength, convert to and from llama.cpp control vectors.",
        discussion: """
        Apply a vector with --steer FILE[:MULTIPLIER] on chat, generate, evaluate and serve. Layer L means the residual \
        stream after L decoder blocks (as `probe` and Hugging Face's hidden_states number them); llama.cpp calls it direction.(L-1).
        """,
        subcommands: [SteerBuild.self, SteerSweep.self, SteerShow.self, SteerExport.self, SteerImport.self])
}

/// Steering layers: "12", "10-14", "8,12,16" within 1..<layerCount.
func parseSteeringLayers(_ text: String, layerCount: Int) throws -> [Int] {
    let layers = try parseLayers(text, layerCount: layerCount)
    guard let last = layers.last, last < layerCount else {
        throw ValidationError("--layers: steerable layers are 1...\(layerCount - 1) (layer \(layerCount) is read only through the final norm)")
    }
    return layers
}

struct SteerBuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build a steering vector from contrast pairs (answers that support vs oppose a value, for the same prompt).",
        discussion: """
        --value V reads the pairs of that value; --target NAME combines every value's direction weighted by the profile \
        (sum_v t_v d_v / sum_v |t_v|). The file holds a direction for every steerable layer; --layers picks those --steer \
        applies (`steer sweep` recommends one). Only the pairs of --split are read (default train).
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Contrast pairs (JSONL: id, value, prompt, supports, opposes, split).") var contrast = "data/steering/contrast_pairs.jsonl"
    @Option(help: "The value to steer toward.") var value: String?
    @Option(help: "Or a whole target profile: a preset name (basealign-ideal) or a JSON file.") var target: String?
    @Option(help: "caa (mean difference) or pca (principal direction of the differences).") var method = "caa"
    @Option(help: "Layers --steer applies, e.g. 12 or 10-14 (default: 40% of the depth).") var layers: String?
    @Option(help: "Default multiplier stored in the file (`steer sweep` recommends one).") var multiplier: Float = 2
    @Option(help: "Pairs of this split only ('all' for every pair).") var split = "train"
    @Option(help: "Output file (.safetensors).") var out: String
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        guard (value == nil) != (target == nil) else { throw ValidationError("give exactly one of --value and --target") }
        if let value, SchwartzValue(rawValue: value) == nil {
            throw ValidationError("--value: '\(value)' is not one of \(SchwartzValue.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard SteeringMethod(rawValue: method) != nil else { throw ValidationError("--method must be caa or pca, got '\(method)'") }
        guard FileManager.default.fileExists(atPath: contrast) else { throw ValidationError("--contrast: no such file '\(contrast)'") }
        guard modelOptions.baseURL == nil else { throw ValidationError("steer build needs a local model (its activations), not --base-url") }
        guard modelOptions.steer.isEmpty else { throw ValidationError("steer build reads an unsteered model; drop --steer") }
        guard multiplier.isFinite else { throw ValidationError("--multiplier must be finite") }
        guard out.hasSuffix(".safetensors") else { throw ValidationError("--out must end in .safetensors (use `steer export` for a llama.cpp .gguf)") }
    }

    func run() throws {
        let loaded = try modelOptions.loadLocal()
        let c = loaded.model.configuration
        var pairs = try ContrastPair.load(contrast)
        if split != "all" { pairs = pairs.filter { ($0.split ?? "train") == split } }
        let targetProfile = try target.map { try ProfileStore.resolve($0) }
        if let value, let v = SchwartzValue(rawValue: value) { pairs = pairs.filter { $0.value == v } }
        guard !pairs.isEmpty else { throw ValidationError("no contrast pairs for \(value ?? "the target") in split '\(split)' of \(contrast)") }
        let builder = SteeringBuilder(loaded: loaded)
        let active = try layers.map { try parseSteeringLayers($0, layerCount: c.layerCount) } ?? builder.defaultLayers
        let bar = ProgressBar(total: pairs.count * 2, label: "read", unit: "answers", quiet: quiet)
        let differences = try builder.differences(pairs) { done, _ in bar.update(done); return true }
        bar.update(pairs.count * 2, final: true)
        let m = SteeringMethod(rawValue: method)!
        let perValue = builder.directions(pairs, differences: differences, method: m)
        let directions: [Int: [Float]]
        let name: String
        if let targetProfile {
            directions = try SteeringBuilder.toward(targetProfile, directions: perValue)
            name = "target:\(targetProfile.name)"
        } else {
            directions = perValue[SchwartzValue(rawValue: value!)!]!
            name = value!
        }
        let vector = SteeringVector(
            directions: directions, layers: active, multiplier: multiplier, hiddenSize: c.hiddenSize, modelFingerprint: PEFTAdapter.fingerprint(c),
            name: name, method: m.rawValue,
            notes: ["pairs": String(pairs.count), "contrast": URL(fileURLWithPath: contrast).lastPathComponent, "split": split, "model": loaded.name])
        try vector.save(to: out)
        print("\(name): \(m.rawValue) over \(pairs.count) pairs; applied at layer(s) \(active.map(String.init).joined(separator: ",")) x\(multiplier)")
        print("direction length by layer: " + builder.layers.filter { $0 % 5 == 0 || active.contains($0) }.map { String(format: "%d:%.2f", $0, vector.norm(at: $0)) }.joined(separator: " "))
        print("wrote \(out)")
    }
}

struct SteerSweep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Which layer, what strength: measure a steering vector over a layer x multiplier grid on validation prompts, and recommend a setting.",
        discussion: """
        Each cell answers the prompts greedily with the vector applied at one layer times the multiplier; the evaluator scores \
        the answers against the unsteered model's, per prompt: the effect (the vector's value gained, or for a profile's \
        vector the fall of the weighted distance to --target), BaseAlign's distance change, perplexity of held-out text, and \
        the share of prompts moved the wrong way. Recommended: the largest effect within --max-perplexity-ratio. Writes \
        report.html (heat maps), report.md, report.json and recommended.safetensors into --out; cells are resumable. With \
        --test, the recommended setting is then measured once on the test split of align's held-out sets (values, harm, \
        benign, capability text; gold evaluator beside), as align reports a training run (test/report.*).
        """)

    @Argument(help: "A steering vector (.safetensors from `steer build`).") var vector: String
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var evaluatorOptions: EvaluatorOptions
    @Option(help: "Layers to try, e.g. 4,8,12,16,20 or 6-18.") var layers = "4,8,12,16,20"
    @Option(help: "Apply each setting at this many layers from its first (1: that layer alone).") var band = 1
    @Option(help: "Multipliers to try, comma-separated.") var multipliers = "1,2,4"
    @Option(help: "Value prompts of the cells.") var prompts = "data/prompts/value_prompts.jsonl"
    @Option(help: "Their split (choose on validation; never on test).") var split = "validation"
    @Option(help: "At most this many prompts per cell (default: the whole split; the first N are not a sample of the values, the file is ordered by value).") var limit: Int?
    @Option(help: "Held-out text for perplexity.") var text = "data/eval/heldout_text.txt"
    @Option(help: "Target profile (distance; the effect of a profile's vector).") var target = "basealign-ideal"
    @Option(help: "Most new tokens per answer.") var maxNewTokens = 64
    @Option(help: "Prompts per generation batch.") var batchSize = 16
    @Option(help: "Settings whose perplexity ratio exceeds this are not recommended.") var maxPerplexityRatio = 1.10
    @Flag(help: "Then measure the recommended setting once on the test split (align's held-out sets).") var test = false
    @Option(help: "Gold evaluator weights for --test ('none' to skip; default: the shipped gold heads).") var goldWeights: String?
    @Option(help: "Bootstrap seed.") var seed: UInt64 = 42
    @Option(help: "Output folder.") var out: String
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        guard modelOptions.baseURL == nil, modelOptions.steer.isEmpty else { throw ValidationError("steer sweep applies the vector itself to a local model; drop --steer and --base-url") }
        guard FileManager.default.fileExists(atPath: vector) else { throw ValidationError("no such steering vector '\(vector)'") }
        guard split != "test" else { throw ValidationError("--split test: choose settings on validation (or train); --test reads the test split once for the chosen setting") }
        guard (limit ?? 1) >= 1, maxNewTokens >= 1, batchSize >= 1 else { throw ValidationError("--limit, --max-new-tokens and --batch-size must be at least 1") }
        guard band >= 1 else { throw ValidationError("--band must be at least 1") }
        guard maxPerplexityRatio >= 1 else { throw ValidationError("--max-perplexity-ratio must be at least 1") }
        _ = try parsedMultipliers
    }

    var parsedMultipliers: [Float] {
        get throws {
            let values = multipliers.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0!.isFinite }) else {
                throw ValidationError("--multipliers: expected numbers separated by commas, got '\(multipliers)'")
            }
            return values.map { $0! }
        }
    }

    func run() async throws {
        let steering = try SteeringVector.load(vector)
        let loaded = try modelOptions.loadLocal()
        _ = try steering.steering(for: loaded.model.configuration, path: vector)  // fits this model
        let c = loaded.model.configuration
        let profile = try ProfileStore.resolve(target)
        var parameters = SteeringSweep.Parameters(
            layers: try parseSteeringLayers(layers, layerCount: c.layerCount), multipliers: try parsedMultipliers,
            sets: EvaluationSets(values: prompts, text: text, split: split, limit: limit), target: profile)
        parameters.band = band
        parameters.maxNewTokens = maxNewTokens
        parameters.batchSize = batchSize
        parameters.maxPerplexityRatio = maxPerplexityRatio
        parameters.bootstrap = BootstrapParameters(resamples: 2000, seed: seed)
        let sweep = try SteeringSweep(parameters: parameters, directory: URL(fileURLWithPath: out), vector: steering, vectorPath: vector)
        let backend = LocalChatBackend(loaded)
        let evaluator = try evaluatorOptions.make()
        let quiet = quiet
        nonisolated(unsafe) var bar: ProgressBar?
        nonisolated(unsafe) var current = ""
        let report = try await sweep.run(backend: backend, evaluator: evaluator) { stage in
            guard case let .cell(name, index, total, inner) = stage else { return }
            if case let .generating(_, done, all) = inner {
                if current != name { bar?.update(bar?.total ?? 0, final: true); current = name; bar = ProgressBar(total: all, label: "\(index + 1)/\(total) \(name)", unit: "answers", quiet: quiet) }
                bar?.update(done)
            }
        }
        bar?.update(bar?.total ?? 0, final: true)
        print(try String(contentsOfFile: out + "/report.md", encoding: .utf8))
        print("wrote \(out)/report.html, report.md, report.json" + (report.recommended == nil ? "" : ", recommended.safetensors"))
        guard test else { return }
        guard let best = report.recommended else { throw ValidationError("--test: the sweep recommends no setting, so there is nothing to test") }
        var gold: TrainedValueEvaluator?
        if goldWeights != "none" {
            guard let goldPath = goldWeights ?? EvaluatorWeights.shippedGoldPath() else {
                throw ValidationError("no gold evaluator weights are bundled; pass --gold-weights FILE or --gold-weights none")
            }
            gold = try TrainedValueEvaluator.load(weights: goldPath)
        }
        // align's held-out sets and settings, so the report sits beside a training run's.
        var sets = AlignConfiguration.Defaults.evaluation
        sets.values = prompts
        let testReport = try await SteeringSweep.test(
            vector: steering, vectorPath: vector, layers: Array(best.layer..<(best.layer + band)), multiplier: best.multiplier, sets: sets, target: profile,
            maxNewTokens: AlignConfiguration.Defaults.evaluationMaxNewTokens, batchSize: AlignConfiguration.Defaults.generationBatchSize, bootstrap: parameters.bootstrap, seed: seed, directory: URL(fileURLWithPath: out).appendingPathComponent("test"),
            backend: backend, evaluator: evaluator, gold: gold) { label, stage in
            if case let .generating(set, done, all) = stage {
                if current != label + set { bar?.update(bar?.total ?? 0, final: true); current = label + set; bar = ProgressBar(total: all, label: "test \(label) \(set)", unit: "answers", quiet: quiet) }
                bar?.update(done)
            }
        }
        bar?.update(bar?.total ?? 0, final: true)
        let wrong = try JSONDecoder().decode(SteeringSweep.TestWrongWay.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/test/steering.json")))
        print(String(format: "test split: BaseAlign distance %.3f -> %.3f, change %+.3f [%+.3f, %+.3f]; perplexity x%.3f; %.1f%% of prompts moved the wrong way",
                     testReport.before.distance.value, testReport.after.distance.value, testReport.distanceChange.value,
                     testReport.distanceChange.lower, testReport.distanceChange.upper, testReport.perplexityRatio ?? .nan, wrong.share * 100))
        print("wrote \(out)/test/report.html, report.md, report.json (compare with a training run: valuealign compare RUN \(out)/test)")
    }
}

struct SteerShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Print what a steering vector file holds.")
    @Argument(help: "A steering vector (.safetensors) or llama.cpp control vector (.gguf).") var file: String

    func run() throws {
        let v = try SteeringVector.load(file)
        print("name        \(v.name)\nmethod      \(v.method)\nwidth       \(v.hiddenSize)\nbase model  \(v.modelFingerprint ?? "(not recorded)")")
        print("applies at  layer(s) \(v.layers.map(String.init).joined(separator: ",")) x\(v.multiplier)")
        print("directions  " + v.directions.keys.sorted().map { String(format: "%d:%.2f", $0, v.norm(at: $0)) }.joined(separator: " "))
        for (k, value) in v.notes.sorted(by: { $0.key < $1.key }) { print("\(k.padding(toLength: 11, withPad: " ", startingAt: 0)) \(value)") }
    }
}

struct SteerExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a steering vector as a llama.cpp control vector (GGUF), multiplier baked in.",
        discussion: "llama.cpp applies it with `llama-cli -m MODEL.gguf --control-vector FILE.gguf`; it adds direction.N to block N's output, i.e. our layer N+1.")

    @Argument(help: "A steering vector (.safetensors).") var file: String
    @Option(help: "Output .gguf.") var out: String
    @Option(help: "Layers to write (default: the file's).") var layers: String?
    @Option(help: "Multiplier to bake in (default: the file's).") var multiplier: Float?
    @Option(help: "controlvector.model_hint (the base model's architecture).") var modelHint = "llama"

    func validate() throws {
        guard out.hasSuffix(".gguf") else { throw ValidationError("--out must end in .gguf") }
    }

    func run() throws {
        var v = try SteeringVector.load(file)
        if let layers { v = try v.applied(at: try parseLayers(layers, layerCount: (v.directions.keys.max() ?? 1) + 1), path: file) }
        try ControlVectorGGUF.write(v, to: out, modelHint: modelHint, multiplier: multiplier)
        print("wrote \(out): direction.\(v.layers.map { String($0 - 1) }.joined(separator: ",")) (our layers \(v.layers.map(String.init).joined(separator: ","))) x\(multiplier ?? v.multiplier)")
    }
}

struct SteerImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Read a llama.cpp or repeng control vector (GGUF) into a steering vector file checked against a model.")

    @Argument(help: "A control vector .gguf.") var file: String
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Output file (.safetensors).") var out: String

    func validate() throws {
        guard out.hasSuffix(".safetensors") else { throw ValidationError("--out must end in .safetensors") }
        guard modelOptions.baseURL == nil, modelOptions.steer.isEmpty else { throw ValidationError("steer import checks against a local, unsteered model") }
    }

    func run() throws {
        var v = try ControlVectorGGUF.read(file)
        let path = try ModelLocator.resolve(modelOptions.model)
        let c = try Checkpoint.read(path).configuration
        _ = try v.steering(for: c, path: file)  // width and layers fit this model
        v.modelFingerprint = PEFTAdapter.fingerprint(c)
        v.notes["imported_from"] = URL(fileURLWithPath: file).lastPathComponent
        try v.save(to: out)
        print("wrote \(out): layers \(v.layers.map(String.init).joined(separator: ",")) (llama.cpp direction.N = layer N+1), width \(v.hiddenSize)")
    }
}
