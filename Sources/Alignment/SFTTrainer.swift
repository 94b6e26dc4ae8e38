import Foundation
public import LanguageModels
import MLXEngine
import MLXNN

/// One supervised example: a conversation and the answer to learn.
public struct SFTExample: Sendable, Codable, Equatable {
    public var prompt: [ChatMessage]
    public var response: String
    /// False when the response was cut by a token limit: it is trained without the end-of-turn
    /// token. Absent in JSON means true.
    public var finished: Bool

    public init(prompt: [ChatMessage], response: String, finished: Bool = true) {
        self.prompt = prompt
        self.response = response
        self.finished = finished
    }

    enum CodingKeys: String, CodingKey { case prompt, response, finished }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        prompt = try c.decode([ChatMessage].self, forKey: .prompt)
        response = try c.decode(String.self, forKey: .response)
        finished = try c.decodeIfPresent(Bool.self, forKey: .finished) ?? true
    }

    /// Best-of-N fine-tuning: the candidate with the highest reward becomes the example (the
    /// first of equals). Nil when there are no candidates or the counts differ. `finished`
    /// (one flag per candidate; nil: all finished) says which candidates ended on their own.
    public static func bestOfN(prompt: [ChatMessage], candidates: [String], rewards: [Double], finished: [Bool]? = nil) -> SFTExample? {
        guard !candidates.isEmpty, candidates.count == rewards.count, finished.map({ $0.count == candidates.count }) ?? true,
              let best = rewards.indices.max(by: { rewards[$0] < rewards[$1] || (rewards[$0] == rewards[$1] && $0 > $1) }) else { return nil }
        return SFTExample(prompt: prompt, response: candidates[best], finished: finished?[best] ?? true)
    }
}

/// Supervised fine-tuning: the mean negative log-likelihood of the response tokens (prompt and
/// padding masked), over all response tokens of the micro-batch, as TRL's `SFTTrainer` with
/// `completion_only_loss` computes it. Also the update of best-of-N fine-tuning.
public final class SFTObjective: TrainingObjective {
    public struct Batch {
        public var tokens: TokenBatch
        public var responses: ResponseTokens
    }

    public let loaded: LoadedModel
    public let examples: [SFTExample]
    /// Longest prompt + response in tokens (TRL `SFTConfig.max_length` = 1024); longer pairs are cut.
    public let maxLength: Int
    let encoder: ChatEncoder

    public init(model loaded: LoadedModel, examples: [SFTExample], maxLength: Int = 1024) {
        self.loaded = loaded
        self.examples = examples
        self.maxLength = maxLength
        encoder = ChatEncoder(loaded)
    }

    /// Runner settings with TRL's `SFTConfig` learning rate (2e-5).
    public static var defaultParameters: TrainingRunner<SFTObjective>.Parameters {
        var p = TrainingRunner<SFTObjective>.Parameters()
        p.learningRate = 2e-5
        return p
    }

    public var name: String { "sft" }
    public var model: any CausalLanguageModel { loaded.model }
    public var exampleCount: Int { examples.count }

    public func validate() throws {
        if maxLength < 2 { throw TrainingError.invalidConfiguration(field: "maxLength", message: "must be at least 2, got \(maxLength)") }
        if let i = examples.firstIndex(where: { $0.prompt.isEmpty }) {
            throw TrainingError.insufficientData("sft: example \(i) has no prompt messages")
        }
    }

    public func prepare(_ indices: [Int], seed: UInt64) throws -> PreparedBatch<Batch> {
        var prompts: [[Int]] = [], responses: [[Int]] = []
        for i in indices {
            let (p, r) = ChatEncoder.fit(prompt: encoder.prompt(examples[i].prompt), response: encoder.response(examples[i].response, finished: examples[i].finished), maxLength: maxLength)
            prompts.append(p)
            responses.append(r)
        }
        let batch = try TokenBatch(prompts: prompts, responses: responses, padTokenId: loaded.tokenizer.padTokenId)
        return PreparedBatch(batch: Batch(tokens: batch, responses: try ResponseTokens(batch)),
                             tokens: zip(prompts, responses).reduce(0) { $0 + $1.0.count + $1.1.count })
    }

    public func loss(_ batch: Batch) throws -> ObjectiveOutput {
        let logProbs = try model.responseLogProbs(batch.tokens, batch.responses)
        let nll = try -logProbs.sum() / Float(max(batch.responses.count, 1))
        return ObjectiveOutput(loss: nll, metrics: ["mean_token_logprob": try -nll])
    }
}
