import Alignment
import ArgumentParser
import Evaluators
import Foundation
import LanguageModels
import Oversight
import ValueAlignCore
import ValueSpace

/// `valuealign judge single|pairwise|reference FILE`: a chat model (or a reward model) as judge.
struct JudgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "judge",
        abstract: "Judge answers with a chat model (verdicts read from log-probabilities) or a reward model.",
        discussion: """
            single: grade one answer on a 1-5 rubric ({prompt, response, score?}). pairwise: which of two answers is better \
            ({prompt, response_a, response_b, label?: a|b|tie}, or preference pairs {chosen, rejected} incl. Anthropic HH \
            dialogues, shown in a seeded order); asked in both orders, the probability averaged, orders that disagree count as a \
            tie. reference: does the answer agree with a reference ({prompt, response, reference, correct?}). \
            The verdict is the probability of the allowed answers in the judge's first token (local models, and servers that \
            return logprobs; otherwise the first label in the text). Writes --out/judgements.jsonl (a rerun continues), \
            summary.json and summary.md: agreement with labels beside the majority baseline, Cohen's kappa, position bias, tie \
            rate and verbosity figures.
            """,
        subcommands: [JudgeSingle.self, JudgePairwise.self, JudgeReference.self])
}

/// What every judge subcommand takes.
struct JudgeOptions: ParsableArguments {
    @Argument(help: "JSONL of items to judge.") var file: String
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Judge with a reward model (a `valuealign rm train` run's final/ folder) instead of a chat model (pairwise only).") var rewardModel: String?
    @Option(help: "Run folder (judgements.jsonl, summary.json, summary.md).") var out = "runs/judge"
    @Option(help: "Only lines whose 'split' is this.") var split: String?
    @Option(help: "At most this many items (after --split).") var limit: Int?
    @Option(help: "Seed of the order in which chosen/rejected pairs are shown.") var seed: UInt64 = 0
    @Option(help: "Conversations per batch.") var batchSize = 8
    @Option(help: "Characters of an answer shown to a chat judge.") var maxResponseCharacters = 2000
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: file) else { throw ValidationError("no such file '\(file)'") }
        guard batchSize >= 1, maxResponseCharacters >= 1 else { throw ValidationError("--batch-size and --max-response-characters must be at least 1") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if let rewardModel {
            guard FileManager.default.fileExists(atPath: rewardModel + "/reward_model.json") else {
                throw ValidationError("--reward-model: not a reward model folder (no reward_model.json in '\(rewardModel)'); train one with valuealign rm train")
            }
            guard modelOptions.baseURL == nil else { throw ValidationError("--reward-model runs locally; it cannot be combined with --base-url") }
        }
    }

    func makeJudge() throws -> any Judge {
        if let rewardModel {
            let base = try modelOptions.loadLocal()
            return RewardModelJudge(model: try RewardModel.load(from: URL(fileURLWithPath: rewardModel), base: base), label: rewardModel, batchSize: batchSize)
        }
        return LLMJudge(backend: try modelOptions.makeBackend(), maxResponseCharacters: maxResponseCharacters, batchSize: batchSize)
    }

    func run(_ task: JudgeTask) async throws {
        let items = try JudgeItems.load(file, task: task, split: split, seed: seed, limit: limit)
        let judge = try makeJudge()
        let run = JudgeRun(judge: judge, identity: .init(judge: judge.name, task: task, input: file, split: split, seed: seed),
                           directory: URL(fileURLWithPath: out))
        nonisolated(unsafe) let bar = ProgressBar(total: items.count, label: "judge \(task.rawValue)", unit: "items", quiet: quiet)
        let summary = try await run.run(items) { done, total in bar.update(done, final: done == total) }
        print(summary.markdown)
        print("judgements: \(run.judgementsPath)")
    }
}

struct JudgeSingle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "single", abstract: "Grade each answer on a 1-5 rubric.")
    @OptionGroup var options: JudgeOptions
    func run() async throws { try await options.run(.single) }
}

struct JudgePairwise: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pairwise", abstract: "Say which of two answers is better (both orders).")
    @OptionGroup var options: JudgeOptions
    func run() async throws { try await options.run(.pairwise) }
}

struct JudgeReference: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reference", abstract: "Say whether each answer agrees with its reference answer.")
    @OptionGroup var options: JudgeOptions
    func run() async throws { try await options.run(.reference) }
}

/// `valuealign debate FILE`: two debaters argue, a judge without the evidence decides.
struct DebateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debate",
        abstract: "Debate: two debaters argue for two answers; a judge who cannot see the evidence decides.",
        discussion: """
            FILE: JSONL {id, evidence, question, answers: [2], correct: 0|1, split} (data/oversight/debate.jsonl is the \
            project's set). The debaters (--model/--base-url) read the evidence; the judge (--judge-model/--judge-url; \
            default: the debaters' model) reads the question, the answers and the transcript, with quotes marked verified \
            or not. The judge is also asked blind and with the evidence, so the summary gives its accuracy without debate, \
            with debate and at the ceiling, and the paired gain. Writes --out/transcripts.jsonl (a rerun continues), \
            summary.json and summary.md.
            """)

    @Argument(help: "JSONL of debate items.") var file: String
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "The judge's model (local name or path, or with --judge-url the served model's name); default: the debaters' model.") var judgeModel: String?
    @Option(help: "OpenAI-compatible server of the judge.") var judgeURL: String?
    @Option(help: "Rounds of arguments (each debater speaks once per round).") var rounds = 2
    @Option(help: "Most tokens per argument.") var argumentTokens = 80
    @Option(help: "Only items of this split (train, validation, test).") var split: String?
    @Option(help: "At most this many items.") var limit: Int?
    @Option(help: "Items debated per batch.") var batchSize = 8
    @Option(help: "Run folder.") var out = "runs/debate"
    @Option(help: "Bootstrap seed.") var seed: UInt64 = 0
    @Flag(help: "Do not mark quotes as verified or not.") var noQuoteCheck = false
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        guard FileManager.default.fileExists(atPath: file) else { throw ValidationError("no such file '\(file)'") }
        guard rounds >= 1, rounds <= 8 else { throw ValidationError("--rounds must be 1 to 8") }
        guard argumentTokens >= 8, batchSize >= 1 else { throw ValidationError("--argument-tokens must be at least 8 and --batch-size at least 1") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let items = try DebateItem.load(file, split: split, limit: limit)
        let debaters = try modelOptions.makeBackend()
        let judge = judgeModel == nil && judgeURL == nil ? debaters : try auxiliaryBackend(model: judgeModel, url: judgeURL)
        var debate = Debate(debaters: debaters, judge: judge, rounds: rounds, argumentTokens: argumentTokens, verifyQuotes: !noQuoteCheck)
        debate.judge.batchSize = batchSize * 2
        var run = DebateRun(debate: debate, directory: URL(fileURLWithPath: out))
        run.batchSize = batchSize
        run.bootstrap = BootstrapParameters(seed: seed)
        let bar = ProgressBar(total: items.count, label: "debate", unit: "items", quiet: quiet)
        let summary = try await run.run(items, input: file, split: split) { done, total in bar.update(done, final: done == total) }
        print(summary.markdown)
    }
}

/// `valuealign constitution from-profile|show`.
struct ConstitutionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "constitution",
        abstract: "Constitutions: principles that critique-and-revise checks answers against.",
        subcommands: [ConstitutionFromProfile.self, ConstitutionShow.self])
}

struct ConstitutionFromProfile: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "from-profile",
        abstract: "Write the constitution a target value profile implies (a principle per value the target weighs >= 0.3).")
    @Argument(help: "Target profile: a preset name (valuealign profile list) or a JSON file.") var target: String
    @Option(help: "Write the constitution (JSON) here; default: print it.") var out: String?

    func run() async throws {
        let profile: ValueProfile
        do { profile = try ProfileStore.resolve(target) } catch { throw ValidationError("target: \(error)") }
        let constitution = try Constitution.fromProfile(profile)
        if let out {
            try constitution.write(to: out)
            print("wrote \(constitution.principles.count) principles to \(out)")
        } else {
            print(ConstitutionShow.describe(constitution))
        }
    }
}

struct ConstitutionShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Check a constitution file and print its principles.")
    @Argument(help: "Constitution file (JSON, or text with one principle per line).") var file: String

    static func describe(_ c: Constitution) -> String {
        let total = c.principles.reduce(0) { $0 + $1.weight }
        return "constitution \(c.name): \(c.principles.count) principles\n" + c.principles.map {
            String(format: "- %@ (weight %.2f, drawn %.0f%%): %@\n  critique: %@\n  revision: %@", $0.id, $0.weight, 100 * $0.weight / total, $0.text, $0.critique, $0.revision)
        }.joined(separator: "\n")
    }

    func run() async throws { print(Self.describe(try Constitution.load(file))) }
}

/// `valuealign cai generate`.
struct CAICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cai",
        abstract: "Constitutional AI: critique-and-revise data.",
        subcommands: [CAIGenerate.self])
}

struct CAIGenerate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Answer prompts, critique each answer against a principle, revise it; keep revisions the evaluator puts closer to the target.",
        discussion: """
            Writes --out/records.jsonl (every prompt: answer, principle, critique, revision, rewards, kept; a rerun continues), \
            sft.jsonl (kept revisions, TRL's conversational 'messages' format), pairs.jsonl (revision over original, TRL's \
            conversational preference format) and summary.json. Train on them with \
            valuealign align --method cai-sft|cai-dpo --cai-data DIR.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(parsing: .upToNextOption, help: "Prompt files (JSONL, as align reads them).") var prompts: [String]
    @Option(help: "Only prompts of this split ('' for every line).") var split = "train"
    @Option(help: "At most this many prompts per file.") var limit: Int?
    @Option(help: "Constitution file; default: the one --target implies.") var constitution: String?
    @Option(help: "Target profile the revisions are measured against (preset name or JSON file).") var target = ProfileStore.defaultTargetName
    @Option(help: "Evaluator weights (default: the shipped ones).") var evaluatorWeights: String?
    @Option(help: "Most tokens per answer and per revision.") var maxTokens = 128
    @Option(help: "Most tokens per critique.") var critiqueTokens = 96
    @Option(help: "Sampling temperature.") var temperature: Float = 0.7
    @Option(help: "Least reward gain of a revision over its answer to keep it.") var minRewardGap = 0.05
    @Option(help: "Prompts per batch.") var batchSize = 8
    @Option(help: "Seed of sampling and of the principles drawn.") var seed: UInt64 = 42
    @Option(help: "Run folder.") var out = "runs/cai"
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        guard !prompts.isEmpty else { throw ValidationError("--prompts: name at least one prompt file") }
        for p in prompts where !FileManager.default.fileExists(atPath: p) { throw ValidationError("--prompts: no such file '\(p)'") }
        if let constitution, !FileManager.default.fileExists(atPath: constitution) { throw ValidationError("--constitution: no such file '\(constitution)'") }
        guard maxTokens >= 1, critiqueTokens >= 1, batchSize >= 1 else { throw ValidationError("--max-tokens, --critique-tokens and --batch-size must be at least 1") }
        guard temperature >= 0, minRewardGap >= 0 else { throw ValidationError("--temperature and --min-reward-gap must be >= 0") }
    }

    func run() async throws {
        let profile: ValueProfile
        do { profile = try ProfileStore.resolve(target) } catch { throw ValidationError("--target: \(error)") }
        let principles = try constitution.map { try Constitution.load($0) } ?? Constitution.fromProfile(profile)
        let all = try GenerationJob.conversations(of: prompts, split: split.isEmpty ? nil : split, limit: limit)
        let backend = try modelOptions.makeBackend()
        let evaluator = try TrainedValueEvaluator.load(weights: evaluatorWeights)
        let settings = ConstitutionalGeneration.Settings(
            model: backend.modelName, constitution: principles, target: profile.name, evaluator: evaluator.name, seed: seed,
            maxTokens: maxTokens, critiqueTokens: critiqueTokens, temperature: temperature, minimumGap: minRewardGap)
        var job = ConstitutionalGeneration(backend: backend, reward: BaseAlignReward(evaluator: evaluator, target: profile), settings: settings,
                                           directory: URL(fileURLWithPath: out))
        job.batchSize = batchSize
        nonisolated(unsafe) let bar = ProgressBar(total: all.count, label: "cai generate", unit: "prompts", quiet: quiet)
        let summary = try await job.run(all) { done, total in bar.update(done, final: done == total) }
        print(String(format: "prompts %d, revisions kept %d (%.0f%%); mean reward: answers %.3f, revisions %.3f; revisions the reward prefers: %.0f%%; unusable (commentary, loops): %d",
                     summary.prompts, summary.kept, 100 * Double(summary.kept) / Double(max(summary.prompts, 1)),
                     summary.meanOriginalReward, summary.meanRevisionReward, 100 * summary.improvedShare, summary.unusable))
        print("wrote \(out)/sft.jsonl and \(out)/pairs.jsonl")
    }
}
