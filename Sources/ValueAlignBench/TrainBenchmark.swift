import Alignment
import Foundation
public import LanguageModels
import MLXEngine
import MLXNN

/// `valuealign bench train`: tokens/s of a DPO step and of a GRPO update (the update only:
/// sampling, rewards and the reference pass happen before it, as in TRL) on a real model with
/// LoRA r=16 on q/v, beside a PyTorch + transformers + PEFT LoRA step on the same model
/// (bench/anchors/train_step.py) run in the same invocation.
///
/// Shapes: 8 sequences of 128 tokens (64 prompt + 64 answer). The DPO step is 4 pairs (8
/// sequences): the reference forward with the adapter off, then forward+backward and AdamW, all
/// through `TrainingRunner`. The GRPO update is one prompt with a group of 8 answers: the
/// clipped-ratio loss with the k3 KL term, forward+backward and AdamW (`GradientStep`). The
/// anchor measures a plain causal-LM forward+backward+AdamW over all 8 x 128 positions (beside
/// the GRPO update) and a DPO step as TRL's DPOTrainer runs it for a PEFT model (reference forward
/// with the adapter disabled, policy forward+backward, AdamW; beside our DPO step).
public struct TrainBenchmark {
    public struct Parameters: Sendable {
        public var modelPath: String
        public var batch = 8
        public var sequence = 128
        public var loraRank = 16
        /// Timed steps per figure (median reported), after `warmup` untimed ones.
        public var iterations = 3
        public var warmup = 1
        public var anchors = true
        public var threads = 2
        public var precision: WeightPrecision = .hybrid
        /// Also measure with bfloat16 matmuls on AMX (`MatmulPrecision.bfloat16`) where AMX works,
        /// beside the anchor under bf16 autocast.
        public var bf16 = true
        /// Measure the float32 figures (and run their anchor); off measures bf16 only.
        public var float32 = true
        /// Measure the GRPO update (and its whole-rows comparison) and the reference forward; off
        /// measures the DPO step only.
        public var grpo = true
        /// The repository root (for bench/anchors and .deps).
        public var root = FileManager.default.currentDirectoryPath
        public init(modelPath: String) { self.modelPath = modelPath }
    }

    let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    /// The 1-minute load average (the machine is shared; figures move with it).
    static func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
    }

    static func ids(_ count: Int, vocabulary: Int, salt: Int) -> [Int] {
        GenerationBenchmark.syntheticPrompt(length: count, vocabulary: vocabulary, salt: salt)
    }

    public func run(progress: (String) -> Void) throws -> BenchmarkReport {
        let p = parameters
        guard p.batch >= 2, p.batch % 2 == 0, p.sequence >= 4 else {
            throw TrainingError.invalidConfiguration(field: "batch", message: "needs an even batch >= 2 and sequences of at least 4 tokens")
        }
        var report = BenchmarkReport(benchmark: "bench train")
        let loadBefore = Self.loadAverage()
        progress("loading \(p.modelPath)")
        let loaded = try LoadedModel.load(p.modelPath, precision: p.precision)
        let vocab = loaded.model.configuration.vocabularySize
        let half = p.sequence / 2
        let lora = LoRAConfiguration(rank: p.loraRank, alpha: Float(2 * p.loraRank), dropout: 0, targetModules: ["q_proj", "v_proj"])
        let tokens = p.batch * p.sequence

        let pairs = (0..<(p.batch / 2)).map { i in
            TokenizedPreference(prompt: Self.ids(half, vocabulary: vocab, salt: 10 * i), chosen: Self.ids(p.sequence - half, vocabulary: vocab, salt: 10 * i + 1),
                                rejected: Self.ids(p.sequence - half, vocabulary: vocab, salt: 10 * i + 2))
        }
        var options = GRPOObjective.Options()
        options.groupSize = p.batch
        let grpo = GRPOObjective(model: loaded, prompts: [[.user("benchmark")]], reward: { _, r in r.map { _ in 0 } }, options: options)
        let prompt = Self.ids(half, vocabulary: vocab, salt: 99)
        let batchTokens = try TokenBatch(prompts: Array(repeating: prompt, count: p.batch),
                                         responses: (0..<p.batch).map { Self.ids(p.sequence - half, vocabulary: vocab, salt: 200 + $0) },
                                         padTokenId: loaded.tokenizer.padTokenId)
        let advantages = try MLXRandom.normal([p.batch], key: MLXRandom.key(5)).asArray(Float.self)

        struct Measured { var dpo: Double, grpo: Double?, grpoWholeRows: Double?, reference: Double? }
        func measure(_ precision: MatmulPrecision) throws -> Measured {
            // DPO: the whole step through the runner (reference pass, policy pass, backward, AdamW).
            progress("DPO step (\(precision.rawValue)): \(p.batch / 2) pairs of \(p.sequence)-token sequences, \(p.warmup) + \(p.iterations) steps")
            var dpo = TrainingRunner<PreferenceObjective>.Parameters()
            dpo.steps = p.warmup + p.iterations
            dpo.batchSize = pairs.count
            dpo.learningRate = 1e-4
            dpo.lora = lora
            dpo.shuffle = false
            dpo.matmulPrecision = precision
            var stepRates: [Double] = []
            // The reference pass in every step, as the anchor's (TRL's default): no precomputed table.
            var dpoOptions = PreferenceObjective.Options()
            dpoOptions.precomputeReference = false
            try TrainingRunner(objective: PreferenceObjective(model: loaded, tokenizedExamples: pairs, options: dpoOptions), parameters: dpo).run { step in
                if step.step > p.warmup { stepRates.append(step.tokensPerSecond) }
                return true
            }
            guard p.grpo else { return Measured(dpo: median(stepRates), grpo: nil, grpoWholeRows: nil, reference: nil) }
            // GRPO: the update alone on a prepared group (reference log-probs computed beforehand).
            progress("GRPO update (\(precision.rawValue)): 1 prompt x \(p.batch) answers of \(p.sequence) tokens")
            let previous = loaded.model.setMatmulPrecision(precision)
            defer { loaded.model.setMatmulPrecision(previous) }
            let enteredBLAS = TrainingBLASThreads.enter(precision)
            defer { TrainingBLASThreads.leave(enteredBLAS) }
            var reference: MLXArray?
            let referenceMs = try medianMilliseconds(warmup: 1, iterations: p.iterations) {
                let r = try grpo.referenceLogProbs(batchTokens)
                try eval(r)
                reference = r
            }
            let batch = try GRPOObjective.Batch(tokens: batchTokens, advantages: advantages, reference: reference, old: nil)
            // The same update with every row run whole (prompt not shared), timed alternately
            // with it: the same-run gain of running the group's prompt once.
            var whole = batch
            whole.responses = try ResponseTokens(batchTokens, sharePrompts: false)
            let step = GradientStep(trainable: loaded.model, optimizer: AdamW(learningRate: 1e-4, weightDecay: 0), maxGradientNorm: 1)
            let (grpoMs, wholeMs) = try interleavedMedianMilliseconds(
                warmup: p.warmup, iterations: p.iterations,
                { _ = try step([{ try grpo.loss(batch) }], step: 1) }, { _ = try step([{ try grpo.loss(whole) }], step: 1) })
            return Measured(dpo: median(stepRates), grpo: Double(tokens) / grpoMs * 1000, grpoWholeRows: Double(tokens) / wholeMs * 1000,
                            reference: Double(tokens) / referenceMs * 1000)
        }
        let float32 = p.float32 ? try measure(.float32) : nil
        let bf16 = Fast.amxAvailable && p.bf16 ? try measure(.bfloat16) : nil
        let loadAfterOurs = Self.loadAverage()

        var anchor: AnchorResult?, anchorBF16: AnchorResult?
        if p.anchors {
            if float32 != nil {
                progress("anchor: PyTorch + transformers + PEFT, float32 (bench/anchors/train_step.py; minutes on a loaded machine)")
                anchor = runAnchor(bf16: false, note: &report.notes)
            }
            if bf16 != nil {
                progress("anchor: the same under torch.autocast(bfloat16) (--bf16)")
                anchorBF16 = runAnchor(bf16: true, note: &report.notes)
            }
        }
        func add(_ m: Measured, suffix: String, anchor: AnchorResult?, label: String) {
            let anchorName = anchor.map { "PyTorch \($0.version) + transformers \($0.transformers) + PEFT \($0.peft), LoRA step\(label)" }
            // The DPO step beside the anchor's DPO step (reference forward with the adapter off, as
            // TRL's DPOTrainer does for a PEFT model), when the anchor measured one.
            let dpoAnchorName = anchor.map { a in
                "PyTorch \(a.version) + transformers \(a.transformers) + PEFT \(a.peft), \(a.dpoRate != nil ? "DPO step as TRL's" : "LoRA step")\(label)"
            }
            report.figures.append(BenchmarkFigure(name: "dpo_step\(suffix)_tok_s", value: m.dpo, unit: "tok/s", anchorName: dpoAnchorName,
                                                  anchorValue: anchor.map { $0.dpoRate ?? $0.stepRate }, higherIsBetter: true, goal: ">= 1.5x"))
            guard let grpo = m.grpo, let grpoWholeRows = m.grpoWholeRows, let reference = m.reference else { return }
            report.figures.append(BenchmarkFigure(name: "grpo_update\(suffix)_tok_s", value: grpo, unit: "tok/s", anchorName: anchorName,
                                                  anchorValue: anchor?.stepRate, higherIsBetter: true, goal: ">= 1.5x"))
            report.figures.append(BenchmarkFigure(name: "grpo_update\(suffix)_whole_rows_tok_s", value: grpoWholeRows, unit: "tok/s",
                                                  anchorName: "ours, the group's prompt run once (timed alternately)", anchorValue: grpo, higherIsBetter: true))
            report.figures.append(BenchmarkFigure(name: "reference_forward\(suffix)_tok_s", value: reference, unit: "tok/s",
                                                  anchorName: anchor.map { "PyTorch \($0.version) forward, no grad\(label)" }, anchorValue: anchor?.forwardRate, higherIsBetter: true))
        }
        if let float32 { add(float32, suffix: "", anchor: anchor, label: "") }
        if let bf16 {
            add(bf16, suffix: "_bf16", anchor: anchorBF16, label: " (bf16 autocast)")
            if let anchor {
                var note = String(format: "bf16 (AMX) against the float32 anchor: DPO step %.2fx", bf16.dpo / (anchor.dpoRate ?? anchor.stepRate))
                if let grpo = bf16.grpo, let reference = bf16.reference {
                    note += String(format: ", GRPO update %.2fx, reference forward %.2fx", grpo / anchor.stepRate, reference / anchor.forwardRate)
                }
                report.notes.append(note)
            }
        } else if p.bf16 {
            report.notes.append("no bf16 figures: AMX-BF16 does not work on this CPU (Fast.amxAvailable is false)")
        }
        report.notes.append("model \(URL(fileURLWithPath: p.modelPath).lastPathComponent), weights \(p.precision.rawValue); LoRA r=\(p.loraRank) alpha=\(2 * p.loraRank) on q_proj, v_proj; batch \(p.batch) x \(p.sequence) tokens; medians of \(p.iterations) steps after \(p.warmup) warm-up")
        report.notes.append("the DPO step includes its reference forward (adapter off), as the anchor's DPO step does; the GRPO update is beside the anchor's plain LM step (the update alone, as TRL's GRPO runs it after sampling and the reference pass)")
        report.notes.append("load average (1, 5, 15 min): before \(loadBefore); after ours \(loadAfterOurs); after the anchor \(Self.loadAverage())")
        report.notes.append("MLX \(Engine.mlxVersion); BLAS \(Engine.blasProvider) (kernels \(BLASCore.current ?? "?")); kernel ISA \(Fast.kernelISA); anchor threads \(p.threads)")
        for a in [anchor, anchorBF16].compactMap({ $0 }) {
            report.notes.append(String(format: "anchor (%@) LM step %.0f ms (min %.0f), forward %.0f ms, DPO step %@; anchor's load average %@", a.precision, a.stepMs, a.stepMinMs, a.forwardMs,
                                       a.dpoRate.map { String(format: "%.0f ms", Double(tokens) / $0 * 1000) } ?? "not measured", a.loadAverage))
        }
        return report
    }

    struct AnchorResult {
        var version: String
        var transformers: String
        var peft: String
        var stepRate: Double
        var forwardRate: Double
        /// The anchor's DPO step (train_step.py's TRL-style step), when it measured one.
        var dpoRate: Double?
        var stepMs: Double
        var stepMinMs: Double
        var forwardMs: Double
        var loadAverage: String
        var precision: String
    }

    /// Runs bench/anchors/train_step.py with the anchor packages, or says why not.
    func runAnchor(bf16: Bool, note notes: inout [String]) -> AnchorResult? {
        let p = parameters
        let root = p.root
        let script = "\(root)/bench/anchors/train_step.py"
        let folders = ["\(root)/.deps/train-anchor", "\(root)/.deps/reference-py", "\(root)/.deps/anchors"]
        guard FileManager.default.fileExists(atPath: script), folders.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) else {
            notes.append("anchor not installed: run bash bench/anchors/setup.sh, bash scripts/fixtures/setup_reference_py.sh and bash bench/anchors/setup_train.sh")
            return nil
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "--model", p.modelPath, "--batch", "\(p.batch)", "--seq", "\(p.sequence)", "--rank", "\(p.loraRank)",
                             "--alpha", "\(2 * p.loraRank)", "--threads", "\(p.threads)", "--iters", "\(p.iterations)", "--warmup", "\(p.warmup)"] + (bf16 ? ["--bf16"] : [])
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONPATH"] = folders.joined(separator: ":")
        environment["OMP_NUM_THREADS"] = "\(p.threads)"
        environment["TOKENIZERS_PARALLELISM"] = "false"
        process.environment = environment
        // stderr to a file: reading two pipes one after the other can deadlock.
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("valuealign-train-anchor-\(UUID().uuidString).log")
        guard FileManager.default.createFile(atPath: errURL.path, contents: nil), let err = try? FileHandle(forWritingTo: errURL) else {
            notes.append("anchor could not start: cannot create \(errURL.path)")
            return nil
        }
        defer {
            try? err.close()
            try? FileManager.default.removeItem(at: errURL)
        }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch {
            notes.append("anchor could not start: \(error)")
            return nil
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lastLine = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        guard process.terminationStatus == 0,
              let o = try? JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any],
              let rate = (o["tokens_per_second"] as? NSNumber)?.doubleValue,
              let forward = (o["forward_tokens_per_second"] as? NSNumber)?.doubleValue else {
            let reason = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self).split(separator: "\n").suffix(3).joined(separator: " | ")
            notes.append("anchor failed (status \(process.terminationStatus)): \(reason)")
            return nil
        }
        func number(_ key: String) -> Double { (o[key] as? NSNumber)?.doubleValue ?? 0 }
        let load = (o["loadavg"] as? [NSNumber])?.map { String(format: "%.2f", $0.doubleValue) }.joined(separator: " ") ?? "?"
        return AnchorResult(version: o["version"] as? String ?? "?", transformers: o["transformers"] as? String ?? "?", peft: o["peft"] as? String ?? "?",
                            stepRate: rate, forwardRate: forward, dpoRate: (o["dpo_tokens_per_second"] as? NSNumber)?.doubleValue, stepMs: number("step_ms"), stepMinMs: number("step_min_ms"),
                            forwardMs: number("forward_ms"), loadAverage: load, precision: o["precision"] as? String ?? (bf16 ? "bf16-autocast" : "float32"))
    }
}
