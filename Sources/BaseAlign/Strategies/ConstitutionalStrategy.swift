public import Alignment
public import Foundation
import ValueAlignCore
public import LanguageModels
public import ValueSpace

/// Constitutional AI with the reward as the filter (`--method cai-sft` / `cai-dpo`). Each round the
/// policy answers each prompt, critiques its own answer against a principle drawn from the
/// constitution, and revises it (`CritiqueAndRevise`, the same conversations as `valuealign cai
/// generate` and the guard's `revise` action). Both answers are scored by the run's reward; a
/// revision is kept only when it is usable (an answer, not commentary on one, not looping) and
/// beats the original by `minimumRewardGap`. cai-sft fine-tunes on
/// the kept revisions (with the capability retention term, as bon-sft); cai-dpo trains DPO on
/// revision-over-original pairs. Each round's `cai.jsonl` keeps the principles and critiques.
public struct ConstitutionalStrategy: RoundsStrategy {
    public enum Training: Sendable { case sft, dpo }
    public let training: Training

    public init(training: Training) { self.training = training }

    public var method: AlignMethod { training == .sft ? .caiSFT : .caiDPO }

    /// bon-sft's and dpo's learning rates and β; no guided samples (the constitution steers instead).
    public var defaults: AlignMethodDefaults {
        switch training {
        case .sft: AlignMethodDefaults(learningRate: 2e-4, beta: 0.1, guidedSamples: 0, retention: RetentionSettings(path: RetentionSettings.defaultPath))
        case .dpo: AlignMethodDefaults(learningRate: 1e-4, beta: 0.1, guidedSamples: 0)
        }
    }

    public var exampleNoun: String { training == .sft ? "revisions" : "pairs" }

    /// Tokens of a critique.
    static let critiqueTokens = 96

    /// The run's constitution: its file, or the one its target implies.
    public static func constitution(_ c: AlignConfiguration) throws(AlignError) -> Constitution {
        do {
            if let path = c.constitution { return try Constitution.load(path) }
            return try Constitution.fromProfile(c.target)
        } catch {
            throw .invalidConfiguration(field: "constitution", message: "\(error)")
        }
    }

    public func validate(_ c: AlignConfiguration) throws(AlignError) {
        try validateRounds(c)
        if c.guidedSamples > 0 { throw .invalidConfiguration(field: "guided-samples", message: "\(method.rawValue) does not sample with the value-conditioned prompt; use 0") }
        _ = try Self.constitution(c)
        if c.constitutionalData != nil { _ = try Self.precomputed(c) }
    }

    /// The records of `configuration.constitutionalData` by conversation (empty without one).
    static func precomputed(_ c: AlignConfiguration) throws(AlignError) -> [String: PrecomputedRevision] {
        guard let given = c.constitutionalData else { return [:] }
        var isFolder: ObjCBool = false
        let path = FileManager.default.fileExists(atPath: given, isDirectory: &isFolder) && isFolder.boolValue
            ? URL(fileURLWithPath: given).appendingPathComponent("records.jsonl").path : given
        guard FileManager.default.fileExists(atPath: path) else {
            throw .invalidConfiguration(field: "cai-data", message: "no records at '\(path)' (a `valuealign cai generate` folder holds records.jsonl)")
        }
        do {
            var result: [String: PrecomputedRevision] = [:]
            // Read only: the file belongs to another run (it may still be writing it).
            for (_, r) in try JSONLines.read(PrecomputedRevision.self, from: path) { result[key(r.prompt)] = r }
            return result
        } catch {
            throw .invalidConfiguration(field: "cai-data", message: "\(error)")
        }
    }

    static func key(_ messages: [ChatMessage]) -> String {
        messages.map { "\($0.role.rawValue)\u{1F}\($0.content)" }.joined(separator: "\u{1E}")
    }

    public func candidatePhase(_ c: AlignConfiguration) -> String { "answering, critiquing and revising" }

    /// One answer per prompt, its critique and revision; candidates are (original, revision).
    public func candidates(_ run: AlignTrainingRun, prompts: [(id: String, messages: [ChatMessage])], round: Int, directory: URL,
                           stop: () -> Bool) throws -> [CandidateSet]? {
        let c = run.configuration
        let loop = CritiqueAndRevise(constitution: try Self.constitution(c))
        let generator = run.policy.makeGenerator()
        let context = run.policy.model.configuration.maxPositionEmbeddings
        let roundSeed = SplitMix64.derive(c.seed, 0xCA1, UInt64(round))
        let log = directory.appendingPathComponent("cai.jsonl").path
        let given = try Self.precomputed(c)
        func generate(_ conversations: [[ChatMessage]], maxTokens: Int, seed: UInt64) throws -> [GeneratedSequence] {
            let room = context - maxTokens
            let ids = conversations.map { Array(run.policy.promptTokens($0).suffix(room)) }
            return try generator.generate(ids, parameters: GenerationParameters(maxTokens: maxTokens, temperature: c.temperature, topP: c.topP, seed: seed))
        }
        var logged = Set(try JSONLines.readState(CAILogLine.self, from: log).map(\.value.id))
        // Seeds per phase plus each prompt's position in the round, over runs of consecutive
        // generated prompts: a resumed round samples what an uninterrupted one would.
        let answerSeed = SplitMix64.derive(roundSeed, 1), critiqueSeed = SplitMix64.derive(roundSeed, 2), revisionSeed = SplitMix64.derive(roundSeed, 3)
        func revise(_ batch: [(id: String, messages: [ChatMessage])], position: Int) throws -> [CandidateSet] {
            let originals = try generate(batch.map(\.messages), maxTokens: c.maxNewTokens, seed: answerSeed &+ UInt64(position))
            var lastRevisions: [GeneratedSequence] = []
            var call = 0
            let records = try loop.runBlocking(zip(batch, originals).map { ($0.messages, $1.text) },
                                               seeds: batch.indices.map { SplitMix64.derive(roundSeed, 4, UInt64(position + $0)) }) { conversations in
                call += 1
                let out = try generate(conversations, maxTokens: call == 1 ? Self.critiqueTokens : c.maxNewTokens,
                                       seed: (call == 1 ? critiqueSeed : revisionSeed) &+ UInt64(position))
                if call == 2 { lastRevisions = out }
                return out.map(\.text)
            }
            let prompts = batch.map(\.messages)
            let rewards = try run.rewards(prompts + prompts, originals.map(\.text) + records.map(\.revised))
            return try batch.enumerated().map { j, prompt in
                if logged.insert(prompt.id).inserted {
                    try JSONLines.append(CAILogLine(id: prompt.id, original: originals[j].text, record: records[j],
                                                    rewards: [rewards[j], rewards[batch.count + j]]), to: log)
                }
                return CandidateSet(id: prompt.id, messages: prompt.messages, answers: [originals[j].text, records[j].revised],
                                    rewards: [rewards[j], rewards[batch.count + j]],
                                    finished: [originals[j].finishReason == .stop, lastRevisions[j].finishReason == .stop])
            }
        }
        return try run.collectCandidates(prompts, round: round, directory: directory, perBatch: max(1, c.generationBatchSize / 2), stop: stop) { all, offset in
            // Prompts the given data covers take its answers and revisions, rescored by this run's reward.
            let reused = all.compactMap { p in given[Self.key(p.messages)].map { (p, $0) } }
            var sets: [CandidateSet] = []
            if !reused.isEmpty {
                let prompts = reused.map(\.0.messages)
                let rewards = try run.rewards(prompts + prompts, reused.map(\.1.original) + reused.map(\.1.revision))
                sets = reused.enumerated().map { j, item in
                    CandidateSet(id: item.0.id, messages: item.0.messages, answers: [item.1.original, item.1.revision],
                                 rewards: [rewards[j], rewards[reused.count + j]])
                }
            }
            var start = 0
            while start < all.count {
                if given[Self.key(all[start].messages)] != nil { start += 1; continue }
                var end = start
                while end < all.count && given[Self.key(all[end].messages)] == nil { end += 1 }
                sets += try revise(Array(all[start..<end]), position: offset + start)
                start = end
            }
            return sets
        }
    }

    /// Usable revisions (`CritiqueAndRevise.isUsableRevision`) that beat their original by the gap.
    func kept(_ sets: [CandidateSet], gap: Double) -> [CandidateSet] {
        sets.filter { $0.answers.count == 2 && CritiqueAndRevise.isUsableRevision($0.answers[1]) && $0.rewards[1] - $0.rewards[0] >= gap }
    }

    public func examples(from sets: [CandidateSet], configuration: AlignConfiguration) -> [ConstitutionalExample] {
        kept(sets, gap: configuration.minimumRewardGap).map { s in
            switch training {
            case .sft: .sft(SFTExample(prompt: s.messages, response: s.answers[1], finished: s.isFinished(1)))
            case .dpo: .pair(PreferenceExample(prompt: s.messages, chosen: s.answers[1], rejected: s.answers[0],
                                               chosenFinished: s.isFinished(1), rejectedFinished: s.isFinished(0)))
            }
        }
    }

    public func trainRound(_ examples: [ConstitutionalExample], run: AlignTrainingRun, stage: RoundStage,
                           progress: @escaping (TrainingProgress) -> Bool) throws -> TrainingSummary {
        switch training {
        case .sft:
            return try BestOfNStrategy().trainRound(examples.compactMap(\.sft), run: run, stage: stage, progress: progress)
        case .dpo:
            return try PreferenceRoundsStrategy(loss: .dpo).trainRound(examples.compactMap(\.pair), run: run, stage: stage, progress: progress)
        }
    }
}

/// A kept revision as SFT data or as a preference pair.
public enum ConstitutionalExample: Sendable {
    case sft(SFTExample)
    case pair(PreferenceExample)
    var sft: SFTExample? { if case let .sft(e) = self { e } else { nil } }
    var pair: PreferenceExample? { if case let .pair(p) = self { p } else { nil } }
}

/// What `align` reads from a `cai generate` record.
struct PrecomputedRevision: Codable {
    var prompt: [ChatMessage]
    var original: String
    var revision: String
}

/// One line of a round's `cai.jsonl`.
struct CAILogLine: Codable {
    var id: String
    var original: String
    var record: RevisionRecord
    var rewards: [Double]
}
