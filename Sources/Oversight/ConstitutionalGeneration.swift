public import Foundation
public import LanguageModels
public import ValueSpace
import ValueAlignCore

/// One prompt's answer, critique and revision, and whether the revision is kept.
public struct ConstitutionalRecord: Sendable, Codable, Equatable {
    public var id: String
    public var prompt: [ChatMessage]
    public var original: String
    public var principle: String
    public var critique: String
    public var revision: String
    /// BaseAlign rewards of the original and the revision (higher: closer to the target).
    public var rewards: [Double]
    /// The revision is usable (`CritiqueAndRevise.isUsableRevision`) and beats the original by
    /// the minimum gap.
    public var kept: Bool
}

/// `valuealign cai generate`: a model answers prompts, critiques each answer against a principle
/// drawn from the constitution and revises it (`CritiqueAndRevise`); the evaluator scores both
/// against the target, and usable revisions (answers, not commentary or loops) that come closer
/// by `minimumGap` are kept. Writes
/// `records.jsonl` as it goes (a rerun continues), then the kept revisions as SFT data
/// (`sft.jsonl`, TRL's conversational `messages` format) and as preference pairs
/// (`pairs.jsonl`: prompt, chosen = revision, rejected = original, TRL's conversational format),
/// and `summary.json`. `align --method cai-sft|cai-dpo --cai-data DIR` trains on the records.
public struct ConstitutionalGeneration: Sendable {
    /// What identifies a run (a rerun with the same settings continues it).
    public struct Settings: Sendable, Codable, Equatable {
        public var model: String
        public var constitution: Constitution
        public var target: String
        public var evaluator: String
        public var seed: UInt64
        public var maxTokens: Int
        public var critiqueTokens: Int
        public var temperature: Float
        public var minimumGap: Double

        /// The names of the settings that differ from `other`'s.
        public func differences(from other: Settings) -> [String] {
            RunFolder.differing([("model", model != other.model), ("constitution", constitution != other.constitution),
                                 ("target", target != other.target), ("evaluator", evaluator != other.evaluator), ("seed", seed != other.seed),
                                 ("max tokens", maxTokens != other.maxTokens), ("critique tokens", critiqueTokens != other.critiqueTokens),
                                 ("temperature", temperature != other.temperature), ("min reward gap", minimumGap != other.minimumGap)])
        }

        public init(model: String, constitution: Constitution, target: String, evaluator: String, seed: UInt64 = 42, maxTokens: Int = 128,
                    critiqueTokens: Int = 96, temperature: Float = 0.7, minimumGap: Double = 0.05) {
            self.model = model
            self.constitution = constitution
            self.target = target
            self.evaluator = evaluator
            self.seed = seed
            self.maxTokens = maxTokens
            self.critiqueTokens = critiqueTokens
            self.temperature = temperature
            self.minimumGap = minimumGap
        }
    }

    public let backend: any ChatBackend
    public let reward: BaseAlignReward
    public let settings: Settings
    public let directory: URL
    /// Prompts per batch (each batch: answers, critiques, revisions, then rewards).
    public var batchSize = 8

    public init(backend: any ChatBackend, reward: BaseAlignReward, settings: Settings, directory: URL) {
        self.backend = backend
        self.reward = reward
        self.settings = settings
        self.directory = directory
    }

    public var recordsPath: String { directory.appendingPathComponent("records.jsonl").path }

    /// Runs every prompt not yet in `records.jsonl`; `progress` gets (done, total).
    public func run(_ prompts: [(id: String, messages: [ChatMessage])], progress: (@Sendable (Int, Int) -> Void)? = nil) async throws -> ConstitutionalSummary {
        guard !prompts.isEmpty else { throw OversightError.input("no prompts to answer") }
        try RunFolder.claim(directory, for: settings, holder: { _ in "a cai generate run with other settings" },
                            differences: { $0.differences(from: settings) })
        var done: [String: ConstitutionalRecord] = [:]
        if FileManager.default.fileExists(atPath: recordsPath) {
            for (_, r) in try JSONLines.readState(ConstitutionalRecord.self, from: recordsPath) { done[r.id] = r }
        }
        let loop = CritiqueAndRevise(constitution: settings.constitution)
        // Seeds follow each prompt's position in `prompts`, and batches are runs of consecutive
        // prompts not yet done, so a resumed run samples what an uninterrupted one would.
        let answerSeed = SplitMix64.derive(settings.seed, 0xA45), critiqueSeed = SplitMix64.derive(settings.seed, 0xC21), revisionSeed = SplitMix64.derive(settings.seed, 0x2E7)
        progress?(done.count, prompts.count)
        var index = 0
        while index < prompts.count {
            if done[prompts[index].id] != nil { index += 1; continue }
            try Task.checkCancellation()
            let offset = index
            var batch: [(id: String, messages: [ChatMessage])] = []
            while batch.count < batchSize, index < prompts.count, done[prompts[index].id] == nil {
                batch.append(prompts[index])
                index += 1
            }
            let answering = GenerationParameters(maxTokens: settings.maxTokens, temperature: settings.temperature, seed: answerSeed &+ UInt64(offset))
            let originals = try await backend.completeBatch(batch.map(\.messages), parameters: answering)
            var call = 0
            let records = try await loop.run(zip(batch, originals).map { ($0.messages, $1.text) },
                                             seeds: batch.map { SplitMix64.derive(settings.seed, 0xC0DE, UInt64(abs($0.id.hashValueStable))) }) { conversations in
                call += 1
                let p = GenerationParameters(maxTokens: call == 1 ? settings.critiqueTokens : settings.maxTokens, temperature: settings.temperature,
                                             seed: (call == 1 ? critiqueSeed : revisionSeed) &+ UInt64(offset))
                return try await backend.completeBatch(conversations, parameters: p).map(\.text)
            }
            let messages = batch.map(\.messages)
            let rewards = try await reward.rewards(prompts: messages + messages, responses: originals.map(\.text) + records.map(\.revised))
            for (j, prompt) in batch.enumerated() {
                let r = [rewards[j], rewards[batch.count + j]]
                let record = ConstitutionalRecord(id: prompt.id, prompt: prompt.messages, original: originals[j].text, principle: records[j].principle,
                                                  critique: records[j].critique, revision: records[j].revised, rewards: r,
                                                  kept: CritiqueAndRevise.isUsableRevision(records[j].revised) && r[1] - r[0] >= settings.minimumGap)
                try JSONLines.append(record, to: recordsPath)
                done[record.id] = record
            }
            progress?(done.count, prompts.count)
        }
        let all = prompts.map { done[$0.id]! }
        try writeData(all)
        let summary = ConstitutionalSummary(records: all)
        try RunFolder.writeJSON(summary, to: directory.appendingPathComponent("summary.json"))
        return summary
    }

    /// sft.jsonl and pairs.jsonl from the kept records (rewritten whole).
    func writeData(_ records: [ConstitutionalRecord]) throws {
        // ChatMessage encodes as {"role", "content"}, the turns of TRL's conversational formats.
        struct SFTLine: Encodable { var messages: [ChatMessage] }
        struct PairLine: Encodable { var prompt: [ChatMessage]; var chosen: [ChatMessage]; var rejected: [ChatMessage] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var sft = Data(), pairs = Data()
        for r in records where r.kept {
            sft += try encoder.encode(SFTLine(messages: r.prompt + [.assistant(r.revision)])) + Data("\n".utf8)
            pairs += try encoder.encode(PairLine(prompt: r.prompt, chosen: [.assistant(r.revision)], rejected: [.assistant(r.original)])) + Data("\n".utf8)
        }
        try sft.write(to: directory.appendingPathComponent("sft.jsonl"), options: .atomic)
        try pairs.write(to: directory.appendingPathComponent("pairs.jsonl"), options: .atomic)
    }
}

/// What a `cai generate` run produced.
public struct ConstitutionalSummary: Sendable, Codable, Equatable {
    public var prompts: Int
    public var kept: Int
    /// Mean reward of the originals and of the revisions, over all prompts.
    public var meanOriginalReward: Double
    public var meanRevisionReward: Double
    /// Share of revisions the reward prefers at all (before the gap).
    public var improvedShare: Double
    /// Revisions refused as unusable (commentary on an answer, looping, empty).
    public var unusable: Int
    /// Kept revisions per principle.
    public var keptByPrinciple: [String: Int]

    public init(records: [ConstitutionalRecord]) {
        prompts = records.count
        kept = records.filter(\.kept).count
        let n = Double(max(records.count, 1))
        meanOriginalReward = records.reduce(0) { $0 + $1.rewards[0] } / n
        meanRevisionReward = records.reduce(0) { $0 + $1.rewards[1] } / n
        improvedShare = Double(records.filter { $0.rewards[1] > $0.rewards[0] }.count) / n
        unusable = records.filter { !CritiqueAndRevise.isUsableRevision($0.revision) }.count
        keptByPrinciple = Dictionary(grouping: records.filter(\.kept), by: \.principle).mapValues(\.count)
    }
}

extension String {
    /// A hash of the text that is the same in every process (Swift's `hashValue` is seeded per run).
    var hashValueStable: Int64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int64(bitPattern: h >> 1)
    }
}
