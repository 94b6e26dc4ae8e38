public import Foundation
public import LanguageModels
import Alignment

/// One training prompt's sampled answers and their rewards (`round-NNN/candidates.jsonl`).
public struct CandidateSet: Sendable, Codable, Equatable {
    public var id: String
    public var messages: [ChatMessage]
    public var answers: [String]
    public var rewards: [Double]
    /// Per answer: whether it ended on its own (end of turn or a stop string) rather than at
    /// `maxNewTokens`. Nil in files written before it was recorded (read as all finished).
    public var finished: [Bool]?

    public init(id: String, messages: [ChatMessage], answers: [String], rewards: [Double], finished: [Bool]? = nil) {
        self.id = id
        self.messages = messages
        self.answers = answers
        self.rewards = rewards
        self.finished = finished
    }

    /// Whether answer `i` ended on its own.
    public func isFinished(_ i: Int) -> Bool { finished.map { i < $0.count ? $0[i] : true } ?? true }
}

extension AlignTrainingRun {
    /// Samples and scores a round's candidates, appending to `candidates.jsonl` as it goes (a
    /// rerun samples only the prompts not yet there). Returns nil if `stop` ended it early.
    /// Row j of the round draws from seed + j whatever the batch, so a resumed round samples
    /// what an uninterrupted one would.
    public func sampleCandidates(_ prompts: [(id: String, messages: [ChatMessage])], round: Int, directory: URL,
                                 stop: () -> Bool) throws -> [CandidateSet]? {
        let c = configuration
        let generator = policy.makeGenerator()
        let roundSeed = SplitMix64.derive(c.seed, 0x5A_3B, UInt64(round))
        return try collectCandidates(prompts, round: round, directory: directory, perBatch: max(1, c.generationBatchSize / c.samplesPerPrompt),
                                     stop: stop) { batch, offset in
            let (ids, conversations) = candidatePrompts(batch.map(\.messages))
            let parameters = GenerationParameters(maxTokens: c.maxNewTokens, temperature: c.temperature, topP: c.topP,
                                                  seed: roundSeed &+ UInt64(offset * c.samplesPerPrompt))
            let samples = try generator.generate(ids, parameters: parameters)
            let texts = samples.map(\.text)
            let rewards = try rewards(conversations, texts)
            let k = c.samplesPerPrompt
            return batch.enumerated().map { j, prompt in
                let rows = (j * k)..<((j + 1) * k)
                return CandidateSet(id: prompt.id, messages: prompt.messages, answers: Array(texts[rows]),
                                    rewards: Array(rewards[rows]), finished: samples[rows].map { $0.finishReason == .stop })
            }
        }
    }

    /// The reward of each answer, checked (one finite reward per answer); blocks on the async reward.
    public func rewards(_ conversations: [[ChatMessage]], _ texts: [String]) throws -> [Double] {
        let reward = self.reward
        let rewards = try blockingAwait { try await reward(conversations, texts) }
        guard rewards.count == texts.count, rewards.allSatisfy(\.isFinite) else {
            throw TrainingError.reward("expected \(texts.count) finite rewards, got \(rewards)")
        }
        return rewards
    }

    /// A round's candidates, made `perBatch` prompts at a time by `produce` (given the batch and
    /// the position of its first prompt) and appended to `candidates.jsonl` as they come: a rerun
    /// makes only the prompts not yet there. Returns nil if `stop` ended it early.
    public func collectCandidates(_ prompts: [(id: String, messages: [ChatMessage])], round: Int, directory: URL, perBatch: Int,
                                  stop: () -> Bool,
                                  produce: ([(id: String, messages: [ChatMessage])], Int) throws -> [CandidateSet]) throws -> [CandidateSet]? {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("candidates.jsonl").path
        var done: [String: CandidateSet] = [:]
        if FileManager.default.fileExists(atPath: path) {
            for (_, s) in try JSONLines.readState(CandidateSet.self, from: path) { done[s.id] = s }
        }
        var index = 0
        events(.sampling(round: round, done: done.count, total: prompts.count))
        while index < prompts.count {
            if done[prompts[index].id] != nil { index += 1; continue }
            if stop() { return nil }
            var batch: [Int] = []
            while batch.count < perBatch, index < prompts.count, done[prompts[index].id] == nil {
                batch.append(index)
                index += 1
            }
            for set in try produce(batch.map { prompts[$0] }, batch[0]) {
                try JSONLines.append(set, to: path)
                done[set.id] = set
            }
            events(.sampling(round: round, done: done.count, total: prompts.count))
        }
        return prompts.map { done[$0.id]! }
    }

    /// The token rows to sample for a batch of prompts, `samplesPerPrompt` per prompt, and the
    /// conversation each row is scored on. The first `guidedSamples` rows of a prompt see the
    /// target's value-conditioned system prompt; every row is scored (and trained) on the prompt
    /// as it is.
    func candidatePrompts(_ batch: [[ChatMessage]]) -> (ids: [[Int]], conversations: [[ChatMessage]]) {
        let c = configuration
        let context = policy.model.configuration.maxPositionEmbeddings
        let room = min(c.maxPromptTokens, context - c.maxNewTokens)
        let guidance = c.guidedSamples > 0 ? ValueGuidance.systemPrompt(for: c.target) : nil
        var ids: [[Int]] = [], conversations: [[ChatMessage]] = []
        for messages in batch {
            let tokens = Array(policy.promptTokens(messages).suffix(room))
            let guidedTokens = guidance.map { Array(policy.promptTokens(ValueGuidance.guided(messages, guidance: $0)).suffix(context - c.maxNewTokens)) }
            for s in 0..<c.samplesPerPrompt {
                ids.append(s < c.guidedSamples ? guidedTokens ?? tokens : tokens)
                conversations.append(messages)
            }
        }
        return (ids, conversations)
    }
}
