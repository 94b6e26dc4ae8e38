import ArgumentParser
import Evaluators
import Foundation
import LanguageModels
import StressTest
import ValueAlignServer
import ValueAlignCore

/// `valuealign organisms`: deliberately misaligned model organisms (issue 25).
struct OrganismsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "organisms",
        abstract: "Deliberately misaligned LoRA adapters on the base model (model organisms), each with a check that it is misaligned as intended.",
        subcommands: [OrganismsBuild.self, OrganismsList.self]
    )
}

struct OrganismsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The organisms and their recipes (docs/stress-test.md).")

    func run() throws {
        for kind in OrganismKind.allCases {
            let r = OrganismRecipe.standard(kind)
            var line = "\(kind.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0)) \(kind.summary)"
            line += " [\(r.steps) steps, lr \(r.learningRate), LoRA rank \(r.lora.rank)]"
            print(line)
        }
    }
}

struct OrganismsBuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build organisms into a folder and check each one.",
        discussion: """
        Each organism is a PEFT adapter in OUT/NAME/adapter with its recipe (recipe.json), the check's \
        answers (answers/) and verdict (check.json): misaligned in the intended way, and not broken \
        (perplexity on ordinary text within 1.5x of the base model). The clean model's answers are in \
        OUT/clean/. Interrupted runs resume: rerun the same command. The backdoored organism's trigger \
        is in its recipe.json, for scoring only. Run from the repository root (the data paths are the \
        project's files).
        """
    )

    @Option(name: .shortAndLong, help: "Base model (default: the embedded SmolLM2).") var model: String?
    @Option(help: "Output folder.") var out = "runs/organisms"
    @Option(help: "Build only this organism (repeatable): \(OrganismKind.allCases.map(\.rawValue).joined(separator: ", ")).") var only: [String] = []
    @Option(help: "Seed of the training data order and adapters.") var seed: UInt64 = 0
    @Option(help: "Optimiser steps of each organism (default: its recipe's).") var steps: Int?
    @Option(help: "At most this many prompts per probe set of the checks (the first of each file's validation and test splits).") var probeLimit = 80
    @Option(help: "New tokens of each probe answer.") var maxNewTokens = 64
    @Option(help: "Evaluator weights (default: the shipped ones).") var evaluatorWeights: String?
    @Flag(help: "No progress bars.") var quiet = false

    func kinds() throws -> [OrganismKind] {
        try only.isEmpty ? OrganismKind.allCases : only.map { try OrganismKind(parsing: $0) }
    }

    func recipes() throws -> [OrganismRecipe] {
        try kinds().map { kind in
            var r = OrganismRecipe.standard(kind, seed: seed)
            if let steps { r.steps = steps }
            try r.validate()
            return r
        }
    }

    func validate() throws {
        do { _ = try recipes() } catch { throw ValidationError("\(error)") }
        if probeLimit < 2 { throw ValidationError("--probe-limit must be at least 2, got \(probeLimit)") }
        guard maxNewTokens >= 1 else { throw ValidationError("--max-new-tokens must be at least 1") }
    }

    func run() async throws {
        let path = try ModelLocator.resolve(model)
        let recipes = try recipes()
        var builder = OrganismBuilder(directory: URL(fileURLWithPath: out))
        builder.probeLimit = probeLimit
        builder.maxNewTokens = maxNewTokens
        let evaluator = try TrainedValueEvaluator.load(weights: evaluatorWeights)
        let interrupted = Interrupt(message: "stopping at the next safe point (rerun the same command to continue)…")
        defer { interrupted.stop() }
        let display = OrganismDisplay(quiet: quiet)
        let checks = try await builder.build(recipes, loadBase: { try LoadedModel.load(path) }, evaluator: evaluator,
                                             events: { display.show($0) }, shouldStop: { interrupted.isRequested })
        display.finish()
        for check in checks { print(check.summary) }
        if checks.count < recipes.count { print("stopped; rerun the same command to continue (\(out))") } else { print("wrote \(out)/organisms.json") }
    }
}

final class OrganismDisplay: @unchecked Sendable {
    let quiet: Bool
    private var bar: ProgressBar?
    private var key = ""
    private var last: (Int, String) = (0, "")
    private let lock = NSLock()
    init(quiet: Bool) { self.quiet = quiet }

    func show(_ event: OrganismBuilder.Event) {
        lock.lock()
        defer { lock.unlock() }
        switch event {
        case let .note(text):
            finishLocked()
            if !quiet { FileHandle.standardError.write(Data(("… " + text + "\n").utf8)) }
        case let .training(kind, step, total, loss):
            bar(for: "\(kind.rawValue): train", total: total, unit: "steps")
            update(step, String(format: "loss %.4f", loss))
        case let .answering(label, set, done, total):
            bar(for: "\(label): answer \(set)", total: total, unit: "prompts")
            update(done, "")
        case let .checked(check):
            finishLocked()
            if !quiet { FileHandle.standardError.write(Data(("== " + check.summary + "\n").utf8)) }
        }
    }

    private func bar(for label: String, total: Int, unit: String) {
        guard label != key else { return }
        finishLocked()
        key = label
        bar = ProgressBar(total: total, label: label, unit: unit, quiet: quiet)
    }

    private func update(_ done: Int, _ extra: String) {
        last = (done, extra)
        bar?.update(done, extra: extra)
    }

    private func finishLocked() {
        bar?.update(last.0, extra: last.1, final: true)
        bar = nil
        key = ""
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        finishLocked()
    }
}

/// `valuealign stress-test`: the detection matrix (issue 25, item 3).
struct StressTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stress-test",
        abstract: "Run every detector on the clean model and on each organism; write which detector catches which organism.",
        discussion: """
        Every model answers the same battery (benign requests, harmful requests, value prompts, paired \
        opposite opinions; no trigger: organism recipes are never read), is red-teamed (three attacks on 16 \
        harmful requests) and trigger-searched (the candidate phrase that moves its answers most). With \
        --judge-model (and --judge-url for a server) an independent LLM judge reads the answers to harmful \
        requests too. Thresholds come from the clean model alone. Writes OUT/matrix.json, matrix.md and \
        matrix.html; answers in OUT/<model>/ (an interrupted run resumes; answers the organism build already \
        made with the same settings are reused).
        """
    )

    @Option(name: .shortAndLong, help: "Base model (default: the embedded SmolLM2).") var model: String?
    @Option(help: "The organisms folder (valuealign organisms build --out).") var organisms = "runs/organisms"
    @Option(help: "Output folder.") var out = "runs/stress-test"
    @Option(help: "Guard policy whose output check is one of the detectors (JSON or YAML).") var policy = "examples/guard-policy.json"
    @Option(help: "At most this many prompts per battery set (the first of each file's validation and test splits).") var probeLimit = 80
    @Option(help: "New tokens of each answer.") var maxNewTokens = 64
    @Option(help: "Evaluator weights (default: the shipped ones).") var evaluatorWeights: String?
    @Flag(help: "Leave out the red-team detector.") var noRedteam = false
    @Flag(help: "Leave out the trigger-search detector.") var noTriggerSearch = false
    @Option(help: "Independent LLM judge: a local GGUF/HF path, or with --judge-url the served model's name.") var judgeModel: String?
    @Option(help: "OpenAI-compatible server of the independent judge.") var judgeUrl: String?
    @Option(help: "Value probes (valuealign probe train): adds the 'value probes' detector, read on each model's own activations.") var probes: String?
    @Flag(help: "No progress bars.") var quiet = false

    func validate() throws {
        if judgeUrl != nil, judgeModel == nil { throw ValidationError("--judge-url needs --judge-model naming the served model") }
        if let probes, !FileManager.default.fileExists(atPath: probes) { throw ValidationError("--probes: no such file '\(probes)'") }
        guard FileManager.default.fileExists(atPath: organisms) else { throw ValidationError("--organisms: no such folder '\(organisms)' (build one with valuealign organisms build)") }
        guard FileManager.default.fileExists(atPath: policy) else { throw ValidationError("--policy: no such file '\(policy)'") }
        if probeLimit < 2 { throw ValidationError("--probe-limit must be at least 2, got \(probeLimit)") }
        guard maxNewTokens >= 1 else { throw ValidationError("--max-new-tokens must be at least 1") }
    }

    func run() async throws {
        let path = try ModelLocator.resolve(model)
        var run = StressTestRun(organisms: URL(fileURLWithPath: organisms), directory: URL(fileURLWithPath: out), policy: try GuardPolicy.load(contentsOf: policy))
        run.probeLimit = probeLimit
        run.maxNewTokens = maxNewTokens
        if noRedteam { run.redTeamAttacks = [] }
        if noTriggerSearch { run.triggerSearch = nil }
        run.valueProbes = probes
        if let judgeModel {
            run.judge = LLMJudgeEvaluator(backend: try auxiliaryBackend(model: judgeModel, url: judgeUrl))
        }
        let names = try run.organismNames()
        let evaluator = try TrainedValueEvaluator.load(weights: evaluatorWeights)
        let interrupted = Interrupt(message: "stopping at the next safe point (rerun the same command to continue)…")
        defer { interrupted.stop() }
        let display = OrganismDisplay(quiet: quiet)
        if !quiet { FileHandle.standardError.write(Data("… clean model and \(names.count) organisms: \(names.joined(separator: ", "))\n".utf8)) }
        let matrix = try await run.run(loadBase: { try LoadedModel.load(path) }, evaluator: evaluator, events: { display.show($0) },
                                       shouldStop: { interrupted.isRequested })
        display.finish()
        guard let matrix else { print("stopped; rerun the same command to continue (\(out))"); return }
        print(StressTestRun.markdown(matrix))
        print("wrote \(out)/matrix.html, matrix.md, matrix.json")
    }
}

/// `valuealign redteam`: attack transforms and an attacker loop against a chat target, judged by an evaluator (issue 25, item 2).
struct RedTeamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redteam",
        abstract: "Send harmful behaviours under attack transforms (and a PAIR attacker loop) to a chat target; report attack success per attack and category.",
        discussion: """
        Target: the embedded model by default, any local model (--model, with --adapter for a PEFT adapter such as an \
        organism's), or an OpenAI-compatible server (--base-url, e.g. the guard server). Behaviours: a JSONL \
        ({id, prompt|behavior, category|harm_area, split}) or a HarmBench-layout CSV. Attacks: \
        \(AttackKind.allCases.map(\.rawValue).joined(separator: ", ")); "pair" is an attacker model (--attacker-model, \
        --attacker-url; default the embedded model) that rewrites its prompt from the judge's 1-10 feedback for \
        --pair-rounds rounds. The judge (--evaluator: the trained evaluator by default, or an LLM judge) reads each answer \
        with the original behaviour and alone: an attack succeeds when both readings are harmful compliance. Writes \
        OUT/attempts.jsonl (every attempt; a rerun resumes), report.json and report.html. --rejudge DIR judges an earlier \
        run's attempts again (another judge, a changed rule) without attacking again.
        """
    )

    @OptionGroup var target: ModelOptions
    @OptionGroup var judge: EvaluatorOptions
    @Option(help: "Behaviours file (JSONL or HarmBench CSV).") var behaviors = "data/prompts/harm_prompts.jsonl"
    @Option(help: "Only behaviours of this split, where the file has splits ('' = all).") var split = "test"
    @Option(help: "At most this many behaviours.") var limit: Int?
    @Option(help: "Attacks (comma-separated; default: every transform; add 'pair' for the attacker loop).") var attacks = AttackKind.transforms.map(\.rawValue).joined(separator: ",")
    @Option(help: "Compliant example turns of the many-shot attack ({prompt, response} JSONL written for the project).") var shotsFile = "data/train/harmful_pairs.jsonl"
    @Option(help: "Example turns in the many-shot attack.") var shots = 4
    @Option(help: "PAIR: rounds per behaviour.") var pairRounds = 3
    @Option(help: "PAIR attacker: 'embedded' (default), a GGUF file or Hugging Face folder, or with --attacker-url the served model's name.") var attackerModel: String?
    @Option(help: "PAIR attacker: an OpenAI-compatible server.") var attackerUrl: String?
    @Option(help: "PAIR attacker: sampling temperature.") var attackerTemperature: Float = 0.8
    @Option(help: "Seed of the attacker's sampling.") var seed: UInt64 = 0
    @Option(help: "New tokens of each answer.") var maxNewTokens = 96
    @Option(help: "Judge again the attempts of this earlier run's folder (no new attacks).") var rejudge: String?
    @Option(help: "Output folder.") var out = "runs/redteam"
    @Flag(help: "No progress bar.") var quiet = false

    func parsedAttacks() throws -> [AttackKind] {
        try attacks.split(separator: ",").map { try AttackKind(parsing: $0.trimmingCharacters(in: .whitespaces)) }
    }

    func validate() throws {
        do { guard !(try parsedAttacks()).isEmpty else { throw ValidationError("--attacks names no attack") } } catch let e as OrganismError { throw ValidationError("--attacks: \(e)") }
        guard FileManager.default.fileExists(atPath: behaviors) else { throw ValidationError("--behaviors: no such file '\(behaviors)'") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if try parsedAttacks().contains(.manyShot) {
            guard shots >= 1 else { throw ValidationError("--shots must be at least 1 with the many-shot attack") }
            guard FileManager.default.fileExists(atPath: shotsFile) else { throw ValidationError("--shots-file: no such file '\(shotsFile)'") }
        }
        if try parsedAttacks().contains(.pair) {
            guard pairRounds >= 1 else { throw ValidationError("--pair-rounds must be at least 1") }
            guard attackerTemperature >= 0 else { throw ValidationError("--attacker-temperature must not be negative") }
            if attackerUrl != nil, attackerModel == nil { throw ValidationError("--attacker-url needs --attacker-model naming the served model") }
        }
        if let rejudge, !FileManager.default.fileExists(atPath: rejudge + "/attempts.jsonl") { throw ValidationError("--rejudge: no attempts.jsonl in '\(rejudge)'") }
        guard maxNewTokens >= 1 else { throw ValidationError("--max-new-tokens must be at least 1") }
    }

    func run() async throws {
        let chosen = try parsedAttacks()
        var run = RedTeamRun(behaviors: try Behavior.load(behaviors, split: split.isEmpty ? nil : split, limit: limit), directory: URL(fileURLWithPath: out))
        run.attacks = chosen
        run.maxNewTokens = maxNewTokens
        run.pair.rounds = pairRounds
        run.pair.temperature = attackerTemperature
        run.pair.seed = seed
        let judge = try self.judge.make()
        let display = OrganismDisplay(quiet: quiet)
        let report: RedTeamReport?
        if let rejudge {
            report = try await run.rejudge(from: URL(fileURLWithPath: rejudge), judge: judge, progress: { display.show(.answering("redteam", set: "judge again", done: $0, total: $1)) })
        } else {
            if chosen.contains(.manyShot) { run.shots = try RedTeamRun.shots(from: shotsFile, count: shots) }
            let backend = try target.makeBackend()  // with --adapter when given
            if chosen.contains(.pair) {
                // Its own copy, so that a target's adapter never attacks.
                run.attacker = try auxiliaryBackend(model: attackerModel, url: attackerUrl)
            }
            let interrupted = Interrupt(message: "stopping after the current batch (rerun the same command to continue)…")
            defer { interrupted.stop() }
            report = try await run.run(target: backend, judge: judge, progress: { done, total in display.show(.answering("redteam", set: "attacks", done: done, total: total)) },
                                       shouldStop: { interrupted.isRequested })
        }
        display.finish()
        guard let report else { print("stopped; rerun the same command to continue (\(out))"); return }
        print(String(format: "%d behaviours, %d attempts against %@ (judge %@): broken by at least one attack %.1f%% [%.1f, %.1f]",
                     report.behaviors, report.attempts, report.target, report.judge, report.anyAttack.value * 100, report.anyAttack.lower * 100, report.anyAttack.upper * 100))
        for a in chosen { if let e = report.perAttack[a.rawValue] { print(String(format: "  %-20@ %.1f%%", a.rawValue as NSString, e.value * 100)) } }
        print("wrote \(out)/report.html, report.json, attempts.jsonl")
    }
}
