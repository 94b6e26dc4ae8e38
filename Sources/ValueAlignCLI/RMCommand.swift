import Alignment
import ArgumentParser
import Dispatch
import Foundation
import LanguageModels
import MLXNN
import ValueSpace

struct RMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Reward models: train one on preference pairs.",
        subcommands: [RMTrain.self]
    )
}

struct RMTrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a reward model (LoRA + scalar head, Bradley-Terry loss) on chosen/rejected pairs.",
        discussion: """
        Pairs: JSONL lines {"chosen": "...", "rejected": "..."} holding Human/Assistant dialogues that share every turn \
        before the final answer (the HH preference format). The run directory gets metrics.jsonl, checkpoints and, at the \
        end, final/ (PEFT adapter + extra_parameters.safetensors with the head + reward_model.json). Rerunning the same \
        command continues from the newest checkpoint; Ctrl-C stops after the current step with a checkpoint.
        """
    )

    @Option(help: "Preference pairs (JSONL, HH format).") var pairs: String
    @Option(name: .shortAndLong, help: "Model: 'embedded' (default), a GGUF file, a Hugging Face folder or a name in the models folder.") var model: String?
    @Option(help: "Optimiser steps.") var steps = 100
    @Option(help: "Run directory (checkpoints, metrics, final/).") var out = "runs/reward-model"
    @Option(help: "Pairs per step.") var batchSize = 8
    @Option(help: "Micro-batches per step (gradient accumulation).") var gradientAccumulation = 1
    @Option(help: "Peak learning rate (Hugging Face's default).") var learningRate: Float = 5e-5
    @Option(help: "Linear warm-up steps.") var warmupSteps = 0
    @Option(help: "Longest prompt + answer in tokens; longer pairs are cut.") var maxLength = 1024
    @Option(help: "LoRA rank.") var loraRank = 8
    @Option(help: "LoRA alpha (the update is scaled by alpha / rank).") var loraAlpha: Float = 16
    @Option(parsing: .upToNextOption, help: "Layers to adapt.") var loraTargets: [String] = ["q_proj", "v_proj"]
    @Option(help: "Steps between checkpoints (0: only the final output).") var checkpointEvery = 50
    @Option(help: "Use at most this many pairs of the file (0: all).") var limit = 0
    @Option(help: "Seed of data order, adapter and head initialisation.") var seed: UInt64 = 42
    @Option(help: "Weights in memory: hybrid (default), float32 or quantized.") var precision = "hybrid"
    @Flag(help: "Start over: ignore checkpoints already in the run directory.") var restart = false
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: pairs) else { throw ValidationError("--pairs: no such file '\(pairs)'") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1") }
        guard batchSize >= 1, gradientAccumulation >= 1 else { throw ValidationError("--batch-size and --gradient-accumulation must be at least 1") }
        guard learningRate > 0, learningRate.isFinite else { throw ValidationError("--learning-rate must be a number > 0") }
        guard maxLength >= 2 else { throw ValidationError("--max-length must be at least 2") }
        guard loraRank >= 1, !loraTargets.isEmpty else { throw ValidationError("--lora-rank must be at least 1 and --lora-targets must name a layer") }
        guard limit >= 0, checkpointEvery >= 0, warmupSteps >= 0 else { throw ValidationError("--limit, --checkpoint-every and --warmup-steps must be >= 0") }
        guard WeightPrecision(rawValue: precision) != nil else { throw ValidationError("--precision must be hybrid, float32 or quantized") }
    }

    func run() async throws {
        let (all, report) = try PreferenceDataset.load(pairs)
        let kept = limit > 0 ? Array(all.prefix(limit)) : all
        let dropped = report.rows - report.kept
        if !quiet {
            FileHandle.standardError.write(Data("\(pairs): \(report.kept) pairs (\(dropped) rows dropped), training on \(kept.count)\n".utf8))
        }
        let path = try ModelLocator.resolve(model)
        let loaded = try LoadedModel.load(path, precision: WeightPrecision(rawValue: precision)!)
        let rewardModel = try RewardModel(loaded, seed: seed)
        var options = RewardModelObjective.Options()
        options.maxLength = maxLength
        let objective = RewardModelObjective(rewardModel: rewardModel, examples: kept.map(PreferenceExample.init), options: options)

        var p = RewardModelObjective.defaultParameters
        p.steps = steps
        p.batchSize = batchSize
        p.gradientAccumulation = gradientAccumulation
        p.learningRate = learningRate
        p.warmupSteps = warmupSteps
        p.lora = LoRAConfiguration(rank: loraRank, alpha: loraAlpha, dropout: 0, targetModules: loraTargets)
        p.seed = seed
        p.runDirectory = out
        p.checkpointEvery = checkpointEvery
        p.resume = !restart
        p.baseModelName = loaded.name
        if restart { try? FileManager.default.removeItem(atPath: out) }
        let runner = TrainingRunner(objective: objective, parameters: p)
        try runner.validate()  // bad settings fail before the first (slow) step

        let start = try runner.startingStep()
        let sink = ProgressSink(label: start > 0 ? "reward model (resumed at step \(start))" : "reward model", start: start, total: steps, quiet: quiet)
        let interrupted = Interrupt(message: "stopping after this step (a checkpoint will be written)…")
        defer { interrupted.stop() }
        let summary = try await runner.runInBackground { progress in
            sink.show(progress)
            return !interrupted.isRequested
        }
        sink.finish()
        guard let last = summary.last else {
            print("nothing to do: \(out) already holds a run of \(summary.steps) steps (use --restart to start over)")
            return
        }
        let accuracy = last.metrics["accuracy"].map { String(format: "%.3f", $0) } ?? "-"
        let where_ = summary.output?.path ?? out
        if summary.stopped {
            print("stopped at step \(summary.steps)/\(steps); checkpoint in \(where_) (rerun the command to continue)")
        } else {
            print(String(format: "reward model: %@ (step %d, loss %.4f, batch accuracy %@)", where_, summary.steps, last.loss, accuracy))
        }
    }
}

/// Shows runner progress on a `ProgressBar`; called from the training thread only, one call at a time.
final class ProgressSink: @unchecked Sendable {
    let start: Int
    private let bar: ProgressBar
    private var last: TrainingProgress?

    /// The bar counts this process's steps (from `start`), so its rate and ETA ignore steps done before a resume.
    init(label: String, start: Int, total: Int, quiet: Bool) {
        self.start = start
        bar = ProgressBar(total: max(total - start, 0), label: label, unit: "steps", quiet: quiet)
    }

    func show(_ p: TrainingProgress) {
        last = p
        bar.update(p.step - start, extra: extra(p))
    }

    func finish() {
        if let last { bar.update(last.step - start, extra: extra(last), final: true) }
    }

    func extra(_ p: TrainingProgress) -> String {
        var parts = [String(format: "loss %.4f", p.loss)]
        if let a = p.metrics["accuracy"] { parts.append(String(format: "acc %.2f", a)) }
        parts.append(String(format: "%.0f tok/s", p.tokensPerSecond))
        return parts.joined(separator: "  ")
    }
}
