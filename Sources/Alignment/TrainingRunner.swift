public import Foundation
public import LanguageModels
import MLXEngine
public import MLXNN

/// How the learning rate falls after warm-up.
public enum LearningRateDecay: String, Sendable, Codable, CaseIterable {
    /// Stays at the peak.
    case constant
    /// Falls linearly to 0 at the last update (Hugging Face's default, `lr_scheduler_type="linear"`).
    case linear
    /// Half a cosine down to 0 at the last update.
    case cosine
}

/// Where a run stands after an optimiser step, for progress bars and logs.
public struct TrainingProgress: Sendable {
    /// Steps done (1-based after the first step) and the run's total.
    public var step: Int
    public var totalSteps: Int
    /// The step's loss (mean over its micro-batches and updates).
    public var loss: Double
    /// The learning rate the step used.
    public var learningRate: Double
    /// The global gradient norm before clipping (mean over the step's updates).
    public var gradientNorm: Double
    /// Tokens processed per second of the step (forward passes of the gradient updates).
    public var tokensPerSecond: Double
    /// Objective-specific figures ("accuracy", "margin", "reward_mean", "kl", ...).
    public var metrics: [String: Double]
    /// Seconds spent training in this process, and the estimated seconds left.
    public var elapsed: Double
    public var estimatedRemaining: Double
    /// The step this process started from (> 0 after a resume).
    public var startStep: Int
}

/// What a finished (or stopped) run produced.
public struct TrainingSummary: Sendable {
    /// Steps done in total (including those before a resume).
    public var steps: Int
    public var startStep: Int
    /// True when the progress callback stopped the run early.
    public var stopped: Bool
    /// The last step's progress (nil when no step ran).
    public var last: TrainingProgress?
    /// The folder with the trained adapter (`runDirectory/final`, or the last checkpoint of a
    /// stopped run); nil without a run directory.
    public var output: URL?
}

/// Runs an objective: seeded data order, micro-batches with gradient accumulation, AdamW on the
/// trainable (LoRA) parameters with warm-up and decay, gradient clipping, JSONL metrics,
/// checkpoints every N steps, and resumption such that a killed run ends where an uninterrupted
/// one with the same seed ends.
///
/// The core (`run`) is synchronous and blocks its thread: call it from a thread of your own, or
/// use `runInBackground`. A step is: prepare `gradientAccumulation` micro-batches of `batchSize`
/// examples, then `updatesPerBatch` optimiser updates over them.
///
/// Run directory layout: `metrics.jsonl` (one line per step), `checkpoint-NNNNNN/` (PEFT adapter
/// files, `extra_parameters.safetensors` for non-LoRA trainables, `optimizer.safetensors`,
/// `trainer_state.json`), `final/` (the trained adapter and the objective's artefacts).
public final class TrainingRunner<Objective: TrainingObjective>: @unchecked Sendable {
    /// Settings shared by every trainer. Defaults are Hugging Face `TrainingArguments`' where
    /// one exists (transformers 4.x; TRL's configs inherit them), else ours, as noted.
    public struct Parameters: Sendable, Codable, Equatable {
        /// Optimiser steps to reach (`max_steps`; ours: 100).
        public var steps = 100
        /// Examples per micro-batch (`per_device_train_batch_size` = 8).
        public var batchSize = 8
        /// Micro-batches whose gradients are averaged into one step (`gradient_accumulation_steps` = 1).
        public var gradientAccumulation = 1
        /// Peak learning rate (`learning_rate` = 5e-5; each trainer's `defaultParameters` sets TRL's value).
        public var learningRate: Float = 5e-5
        /// Decay after warm-up (`lr_scheduler_type` = "linear").
        public var decay: LearningRateDecay = .linear
        /// Updates of linear warm-up from 0 to the peak (`warmup_steps` = 0).
        public var warmupSteps = 0
        /// AdamW's decoupled weight decay (`weight_decay` = 0.0).
        public var weightDecay: Float = 0
        /// AdamW's moment decay rates and epsilon (`adam_beta1` 0.9, `adam_beta2` 0.999, `adam_epsilon` 1e-8).
        public var adamBeta1: Float = 0.9
        public var adamBeta2: Float = 0.999
        public var adamEpsilon: Float = 1e-8
        /// Clip the global gradient norm to this (`max_grad_norm` = 1.0); 0 turns clipping off.
        public var maxGradientNorm: Float = 1
        /// Seed of the data order, LoRA initialisation, dropout and sampling (`seed` = 42).
        public var seed: UInt64 = 42
        /// Shuffle the examples every epoch (the Trainer's random sampler: true).
        public var shuffle = true
        /// The adapter to train when the model has none (PEFT's `LoraConfig`, see `LoRAConfiguration`).
        public var lora = LoRAConfiguration()
        /// A PEFT adapter folder to start from instead of a fresh adapter.
        public var initialAdapter: String?
        /// Where checkpoints, metrics and the result go; nil keeps everything in memory.
        public var runDirectory: String?
        /// Steps between checkpoints (ours: 50; the Trainer's `save_steps` = 500 is sized for
        /// GPU steps that take a fraction of a second); 0 writes only the final output.
        public var checkpointEvery = 50
        /// Checkpoints kept on disk, oldest deleted first (ours: 2; `save_total_limit` = None keeps all).
        public var keepCheckpoints = 2
        /// Continue from the newest checkpoint in `runDirectory` when there is one.
        public var resume = true
        /// Recorded in the adapter's `base_model_name_or_path`.
        public var baseModelName: String?
        /// Arithmetic of the frozen base weights' matmuls during the run (sampling, reference and
        /// policy passes); restored afterwards. `.bfloat16` is TRL's `bf16=True` on AMX CPUs
        /// (`MatmulPrecision`); where AMX does not work it falls back to float32 by itself.
        /// Ours: float32 (the Trainer's default, `bf16=False`).
        public var matmulPrecision: MatmulPrecision = .float32

        public init() {}
    }

    public let objective: Objective
    public let parameters: Parameters

    public init(objective: Objective, parameters: Parameters) {
        self.objective = objective
        self.parameters = parameters
    }

    var runURL: URL? { parameters.runDirectory.map { URL(fileURLWithPath: $0) } }

    // MARK: validation

    /// Checks every setting, the data and any adapter or checkpoint to load, before any work.
    public func validate() throws {
        let p = parameters
        func bad(_ field: String, _ message: String) -> TrainingError { .invalidConfiguration(field: field, message: message) }
        if p.steps < 1 { throw TrainingError.insufficientData("a budget of \(p.steps) steps is too small for one optimiser step; use at least 1") }
        if p.batchSize < 1 { throw bad("batchSize", "must be at least 1, got \(p.batchSize)") }
        if p.gradientAccumulation < 1 { throw bad("gradientAccumulation", "must be at least 1, got \(p.gradientAccumulation)") }
        if !(p.learningRate > 0) || !p.learningRate.isFinite { throw bad("learningRate", "must be a finite number > 0, got \(p.learningRate)") }
        if p.warmupSteps < 0 { throw bad("warmupSteps", "must be >= 0, got \(p.warmupSteps)") }
        if !(p.weightDecay >= 0) { throw bad("weightDecay", "must be >= 0, got \(p.weightDecay)") }
        if !(p.adamBeta1 >= 0 && p.adamBeta1 < 1) { throw bad("adamBeta1", "must be in [0, 1), got \(p.adamBeta1)") }
        if !(p.adamBeta2 >= 0 && p.adamBeta2 < 1) { throw bad("adamBeta2", "must be in [0, 1), got \(p.adamBeta2)") }
        if !(p.adamEpsilon > 0) { throw bad("adamEpsilon", "must be > 0, got \(p.adamEpsilon)") }
        if !(p.maxGradientNorm >= 0) { throw bad("maxGradientNorm", "must be >= 0 (0 = no clipping), got \(p.maxGradientNorm)") }
        if p.checkpointEvery < 0 { throw bad("checkpointEvery", "must be >= 0, got \(p.checkpointEvery)") }
        if p.keepCheckpoints < 1 { throw bad("keepCheckpoints", "must be at least 1, got \(p.keepCheckpoints)") }
        if p.lora.rank < 1 { throw bad("lora.rank", "must be at least 1, got \(p.lora.rank)") }
        if !(p.lora.dropout >= 0 && p.lora.dropout < 1) { throw bad("lora.dropout", "must be in [0, 1), got \(p.lora.dropout)") }
        if p.lora.targetModules.isEmpty { throw bad("lora.targetModules", "name at least one layer, e.g. q_proj, v_proj") }
        if objective.updatesPerBatch < 1 { throw bad("updatesPerBatch", "must be at least 1, got \(objective.updatesPerBatch)") }

        let count = objective.exampleCount
        if count == 0 { throw TrainingError.insufficientData("\(objective.name): no training examples") }
        if count < p.batchSize {
            throw TrainingError.insufficientData("\(objective.name): \(count) example\(count == 1 ? "" : "s") cannot fill one batch of \(p.batchSize); lower the batch size or add data")
        }
        try objective.validate()

        if let resume = try resumableCheckpoint() {
            let state = try readState(resume)
            try checkCompatible(state, at: resume)
            try AdapterFiles.checkFingerprint(of: resume, for: objective.model)
        } else if let initial = p.initialAdapter {
            let url = URL(fileURLWithPath: initial)
            guard FileManager.default.fileExists(atPath: url.appendingPathComponent("adapter_config.json").path) else {
                throw bad("initialAdapter", "no PEFT adapter (adapter_config.json) in \(initial)")
            }
            try AdapterFiles.checkFingerprint(of: url, for: objective.model)
        }
    }

    /// The step a run would start from: that of the newest checkpoint when resuming, else 0.
    public func startingStep() throws -> Int {
        guard let checkpoint = try resumableCheckpoint() else { return 0 }
        return try readState(checkpoint).step
    }

    // MARK: the run

    /// Trains until `steps`, or until `progress` returns false (a checkpoint is written then, so
    /// the run can resume). An error thrown by `progress` ends the run at once, like a kill.
    @discardableResult
    public func run(progress: (TrainingProgress) throws -> Bool = { _ in true }) throws -> TrainingSummary {
        try validate()
        let p = parameters
        let model = objective.model
        let trainable = objective.trainable

        // Adapter and state: from the newest checkpoint, an initial adapter, or fresh.
        var state: TrainerState
        let optimizer: AdamW
        let resumeFrom = try resumableCheckpoint()
        var lora = p.lora
        if let checkpoint = resumeFrom {
            state = try readState(checkpoint)
            try AdapterFiles.load(from: checkpoint, trainable: trainable, model: model)
            lora = state.lora
        } else {
            state = TrainerState(objective: objective.name, seed: p.seed, exampleCount: objective.exampleCount, batchSize: p.batchSize,
                                 gradientAccumulation: p.gradientAccumulation, updatesPerBatch: objective.updatesPerBatch,
                                 baseFingerprint: PEFTAdapter.fingerprint(model.configuration), lora: p.lora)
            if let initial = p.initialAdapter {
                if model.hasLoRA {
                    try AdapterFiles.load(from: URL(fileURLWithPath: initial), trainable: trainable, model: model)
                } else {
                    lora = try PEFTAdapter.load(from: URL(fileURLWithPath: initial), into: model)
                }
                state.lora = lora
            } else if !model.hasLoRA {
                try model.applyLoRA(p.lora, seed: SplitMix64.derive(p.seed, 0x10BA))
            }
        }
        guard !trainable.trainableParameters().isEmpty else {
            throw TrainingError.invalidConfiguration(field: "lora", message: "the model has no trainable parameters")
        }
        let previousPrecision = model.setMatmulPrecision(p.matmulPrecision)
        defer { model.setMatmulPrecision(previousPrecision) }
        let enteredBLAS = TrainingBLASThreads.enter(p.matmulPrecision)
        defer { TrainingBLASThreads.leave(enteredBLAS) }
        // A fresh adapter is lazy random arrays; evaluate them on this thread (MLX streams are per thread).
        try eval(trainable.trainableParameters())
        let totalUpdates = p.steps * objective.updatesPerBatch
        optimizer = AdamW(learningRate: schedule(totalUpdates: totalUpdates), betas: (p.adamBeta1, p.adamBeta2), eps: p.adamEpsilon, weightDecay: p.weightDecay)
        let gradientStep = GradientStep(trainable: trainable, optimizer: optimizer, maxGradientNorm: p.maxGradientNorm)
        if let checkpoint = resumeFrom {
            let file = checkpoint.appendingPathComponent("optimizer.safetensors").path
            let (arrays, _) = try ArrayIO.loadSafetensors(file)
            try optimizer.restore(arrays)
            guard optimizer.step == state.optimizerSteps else {
                throw TrainingError.checkpoint(path: checkpoint.path, message: "optimizer step \(optimizer.step) does not match trainer_state.json's \(state.optimizerSteps)")
            }
        }
        if let run = runURL {
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            try trimMetrics(after: state.step, in: run)
        }

        let startStep = state.step
        var order = epochOrder(count: objective.exampleCount, seed: p.seed, epoch: state.epoch, shuffle: p.shuffle)
        var sessionSeconds = 0.0
        var last: TrainingProgress?
        var lastCheckpoint: URL? = resumeFrom

        while state.step < p.steps {
            let stepStart = DispatchTime.now().uptimeNanoseconds
            // Prepare the step's micro-batches (evaluation mode: no dropout while sampling).
            trainable.train(false)
            var batches: [PreparedBatch<Objective.Batch>] = []
            for micro in 0..<p.gradientAccumulation {
                var indices: [Int] = []
                while indices.count < p.batchSize {
                    if state.cursor == order.count {
                        state.epoch += 1
                        state.cursor = 0
                        order = epochOrder(count: objective.exampleCount, seed: p.seed, epoch: state.epoch, shuffle: p.shuffle)
                    }
                    let take = min(p.batchSize - indices.count, order.count - state.cursor)
                    indices += order[state.cursor..<(state.cursor + take)]
                    state.cursor += take
                }
                batches.append(try objective.prepare(indices, seed: SplitMix64.derive(p.seed, 0x5A3, UInt64(state.step), UInt64(micro))))
            }
            trainable.train(true)

            var lossSum = 0.0, normSum = 0.0, tokens = 0
            var metricSums: [String: Double] = [:]
            let learningRate = optimizer.learningRate
            for update in 0..<objective.updatesPerBatch {
                // Dropout masks depend only on the position in the run.
                try MLXRandom.seed(SplitMix64.derive(p.seed, 0xD80, UInt64(state.step), UInt64(update)))
                let result = try gradientStep(batches.map { prepared in { try self.objective.loss(prepared.batch) } }, step: state.step + 1)
                lossSum += result.loss
                normSum += result.gradientNorm
                for (k, v) in result.metrics { metricSums[k, default: 0] += v }
                tokens += batches.reduce(0) { $0 + $1.tokens }
            }
            state.step += 1
            state.optimizerSteps = optimizer.step

            let seconds = Double(DispatchTime.now().uptimeNanoseconds - stepStart) / 1e9
            sessionSeconds += seconds
            state.elapsedSeconds += seconds
            state.tokensSeen += tokens
            let passes = Double(objective.updatesPerBatch)
            var metrics = metricSums.mapValues { $0 / passes }
            for prepared in batches {
                for (k, v) in prepared.metrics { metrics[k, default: 0] += v / Double(batches.count) }
            }
            let doneHere = state.step - startStep
            let report = TrainingProgress(
                step: state.step, totalSteps: p.steps, loss: lossSum / passes, learningRate: Double(learningRate),
                gradientNorm: normSum / Double(objective.updatesPerBatch), tokensPerSecond: seconds > 0 ? Double(tokens) / seconds : 0,
                metrics: metrics, elapsed: sessionSeconds,
                estimatedRemaining: sessionSeconds / Double(doneHere) * Double(p.steps - state.step), startStep: startStep)
            last = report
            if let run = runURL { try appendMetrics(report, to: run) }

            let keepGoing = try progress(report)
            let due = p.checkpointEvery > 0 && state.step % p.checkpointEvery == 0 && state.step < p.steps
            if let run = runURL, due || !keepGoing {
                lastCheckpoint = try writeCheckpoint(state, optimizer: optimizer, lora: lora, in: run)
            }
            if !keepGoing {
                return TrainingSummary(steps: state.step, startStep: startStep, stopped: true, last: last, output: lastCheckpoint)
            }
        }

        var output: URL?
        if let run = runURL {
            let final = run.appendingPathComponent("final")
            try writeSnapshot(state, optimizer: optimizer, lora: lora, to: final)
            output = final
        }
        return TrainingSummary(steps: state.step, startStep: startStep, stopped: false, last: last, output: output)
    }

    /// Runs `run` on a thread of its own (the model's work must not block Swift's cooperative
    /// pool). Cancelling the calling task stops the run after the current step, with a checkpoint.
    public func runInBackground(progress: @escaping @Sendable (TrainingProgress) -> Bool = { _ in true }) async throws -> TrainingSummary {
        let flag = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<TrainingSummary, any Error>) in
                let thread = Thread { [self] in
                    continuation.resume(with: Result { try self.run { !flag.isCancelled && progress($0) } })
                }
                thread.stackSize = 8 << 20
                thread.start()
            }
        } onCancel: {
            flag.cancel()
        }
    }

    // MARK: pieces

    /// Warm-up, then the chosen decay over the remaining updates.
    func schedule(totalUpdates: Int) -> LearningRateSchedule {
        let p = parameters
        let warmup = min(p.warmupSteps, totalUpdates)
        let rest = max(totalUpdates - warmup, 1)
        let decay: LearningRateSchedule = switch p.decay {
        case .constant: .constant(p.learningRate)
        case .linear: .linearDecay(initial: p.learningRate, steps: rest)
        case .cosine: .cosineDecay(initial: p.learningRate, steps: rest)
        }
        return warmup > 0 ? .linearWarmup(steps: warmup, peak: p.learningRate, then: decay) : decay
    }

    // MARK: checkpoints

    static var stateFile: String { "trainer_state.json" }

    /// The newest complete snapshot of the run directory (a checkpoint, or `final` of a finished
    /// run), when resuming is on.
    func resumableCheckpoint() throws -> URL? {
        guard parameters.resume, let run = runURL else { return nil }
        var candidates = checkpoints(in: run)
        let final = run.appendingPathComponent("final")
        if FileManager.default.fileExists(atPath: final.appendingPathComponent(Self.stateFile).path) {
            candidates.append((try readState(final).step, final))
        }
        return candidates.max { $0.step < $1.step }?.url
    }

    /// Complete checkpoints of `run`, oldest first.
    func checkpoints(in run: URL) -> [(step: Int, url: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: run.path)) ?? []
        return names.compactMap { name -> (Int, URL)? in
            guard name.hasPrefix("checkpoint-"), let step = Int(name.dropFirst("checkpoint-".count)) else { return nil }
            let url = run.appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: url.appendingPathComponent(Self.stateFile).path) ? (step, url) : nil
        }.sorted { $0.0 < $1.0 }
    }

    func readState(_ checkpoint: URL) throws -> TrainerState {
        let url = checkpoint.appendingPathComponent(Self.stateFile)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TrainingError.checkpoint(path: checkpoint.path, message: "cannot read \(Self.stateFile)")
        }
        do { return try JSONDecoder().decode(TrainerState.self, from: data) } catch {
            throw TrainingError.checkpoint(path: url.path, message: "not a trainer state file (\(error))")
        }
    }

    /// A checkpoint resumes only the same objective over the same data with the same batching.
    func checkCompatible(_ s: TrainerState, at url: URL) throws {
        let p = parameters
        func differ(_ what: String, _ theirs: String, _ ours: String) -> TrainingError {
            .checkpoint(path: url.path, message: "it was made with \(what) \(theirs), this run has \(ours); use another run directory or the same settings")
        }
        if s.version != TrainerState.currentVersion { throw TrainingError.checkpoint(path: url.path, message: "state version \(s.version) is not \(TrainerState.currentVersion)") }
        if s.objective != objective.name { throw differ("objective", s.objective, objective.name) }
        if s.seed != p.seed { throw differ("seed", "\(s.seed)", "\(p.seed)") }
        if s.exampleCount != objective.exampleCount { throw differ("a dataset of", "\(s.exampleCount) examples", "\(objective.exampleCount)") }
        if s.batchSize != p.batchSize { throw differ("batch size", "\(s.batchSize)", "\(p.batchSize)") }
        if s.gradientAccumulation != p.gradientAccumulation { throw differ("gradient accumulation", "\(s.gradientAccumulation)", "\(p.gradientAccumulation)") }
        if s.updatesPerBatch != objective.updatesPerBatch { throw differ("updates per batch", "\(s.updatesPerBatch)", "\(objective.updatesPerBatch)") }
        let mine = PEFTAdapter.fingerprint(objective.model.configuration)
        if s.baseFingerprint != mine {
            throw TrainingError.checkpoint(path: url.path, message: "made for a different base model (\(s.baseFingerprint)); this model is \(mine)")
        }
    }

    /// Writes adapter, extra parameters, optimiser state, trainer state and the objective's
    /// artefacts into `directory` (replaced as a whole: written beside it, then renamed).
    func writeSnapshot(_ state: TrainerState, optimizer: AdamW, lora: LoRAConfiguration, to directory: URL) throws {
        let fm = FileManager.default
        let temporary = directory.deletingLastPathComponent().appendingPathComponent(".\(directory.lastPathComponent).partial")
        try? fm.removeItem(at: temporary)
        try fm.createDirectory(at: temporary, withIntermediateDirectories: true)
        try AdapterFiles.save(trainable: objective.trainable, model: objective.model, lora: lora, to: temporary, baseModel: parameters.baseModelName)
        try ArrayIO.saveSafetensors(temporary.appendingPathComponent("optimizer.safetensors").path, arrays: try optimizer.state())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(state).write(to: temporary.appendingPathComponent(Self.stateFile), options: .atomic)
        try objective.writeArtifacts(to: temporary)
        try? fm.removeItem(at: directory)
        do { try fm.moveItem(at: temporary, to: directory) } catch {
            throw TrainingError.checkpoint(path: directory.path, message: "cannot move the finished files into place: \(error.localizedDescription)")
        }
    }

    func writeCheckpoint(_ state: TrainerState, optimizer: AdamW, lora: LoRAConfiguration, in run: URL) throws -> URL {
        let url = run.appendingPathComponent(String(format: "checkpoint-%06d", state.step))
        try writeSnapshot(state, optimizer: optimizer, lora: lora, to: url)
        for old in checkpoints(in: run).dropLast(parameters.keepCheckpoints) { try? FileManager.default.removeItem(at: old.url) }
        return url
    }

    // MARK: metrics log

    static var metricsFile: String { "metrics.jsonl" }

    func appendMetrics(_ r: TrainingProgress, to run: URL) throws {
        var object: [String: Any] = [
            "step": r.step, "loss": r.loss, "learning_rate": r.learningRate, "grad_norm": r.gradientNorm,
            "tokens_per_second": r.tokensPerSecond, "elapsed_seconds": r.elapsed, "eta_seconds": r.estimatedRemaining,
        ]
        for (k, v) in r.metrics where object[k] == nil { object[k] = v.isFinite ? v : String(v) }
        var line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        line.append(UInt8(ascii: "\n"))
        let url = run.appendingPathComponent(Self.metricsFile)
        if !FileManager.default.fileExists(atPath: url.path), !FileManager.default.createFile(atPath: url.path, contents: nil) {
            throw TrainingError.checkpoint(path: url.path, message: "cannot create the metrics log")
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: line)
    }

    /// After a resume, drops the log lines of steps past the checkpoint (they are redone).
    func trimMetrics(after step: Int, in run: URL) throws {
        let url = run.appendingPathComponent(Self.metricsFile)
        guard let data = FileManager.default.contents(atPath: url.path) else { return }
        let kept = data.split(separator: UInt8(ascii: "\n")).filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let s = object["step"] as? Int else { return false }
            return s <= step
        }
        var out = Data()
        for line in kept { out.append(contentsOf: line); out.append(UInt8(ascii: "\n")) }
        try out.write(to: url, options: .atomic)
    }
}

/// What a checkpoint records besides the arrays: position in the data and the settings a resume
/// must share. Every random draw derives from `seed` and the position, so this is also the RNG state.
struct TrainerState: Codable, Equatable {
    static let currentVersion = 1
    var version = TrainerState.currentVersion
    var objective: String
    var seed: UInt64
    var exampleCount: Int
    var batchSize: Int
    var gradientAccumulation: Int
    var updatesPerBatch: Int
    var baseFingerprint: String
    var lora: LoRAConfiguration
    /// Steps done; the data position (epoch, index into the epoch's order); optimiser updates.
    var step = 0
    var epoch = 0
    var cursor = 0
    var optimizerSteps = 0
    var tokensSeen = 0
    var elapsedSeconds = 0.0

    init(objective: String, seed: UInt64, exampleCount: Int, batchSize: Int, gradientAccumulation: Int, updatesPerBatch: Int, baseFingerprint: String, lora: LoRAConfiguration) {
        self.objective = objective
        self.seed = seed
        self.exampleCount = exampleCount
        self.batchSize = batchSize
        self.gradientAccumulation = gradientAccumulation
        self.updatesPerBatch = updatesPerBatch
        self.baseFingerprint = baseFingerprint
        self.lora = lora
    }
}
