public import Foundation
import MLXEngine

/// How closely an exported model reproduces the base model with its adapter attached (the model
/// that was trained and evaluated): next-token logits at every position of a fixed conversation,
/// and a greedy continuation. The base model without the adapter is measured the same way, so
/// the export's error can be read against the size of what the adapter changes.
public struct ExportCheck: Sendable, Codable, Equatable {
    /// Token positions compared.
    public var positions: Int
    /// Largest |logit difference| between the export and base+adapter.
    public var maxLogitDifference: Float
    /// Share of positions whose most likely next token agrees.
    public var top1Agreement: Double
    /// The same two figures for the base model without the adapter (the adapter's own effect).
    public var baseMaxLogitDifference: Float
    public var baseTop1Agreement: Double
    /// Positions where the adapter changes the most likely next token (base vs base+adapter), and
    /// the share of them where the export keeps the adapter's choice: whether the update survived
    /// the export's number format.
    public var adapterChangedPositions: Int
    public var adapterChangesKept: Double
    /// Greedy continuation: tokens compared, and how many leading tokens agree.
    public var greedyTokens: Int
    public var greedyAgreeing: Int
    /// The reference's greedy token ids (for comparing with other engines).
    public var prompt: [Int]
    public var referenceGreedy: [Int]

    /// The fixed conversation every check uses.
    public static let conversation = [ChatMessage(role: .user, content: "A neighbour asks for help moving house on the day I planned to rest. What should I do, and why?")]

    /// Whether the export reproduces base+adapter closely enough to stand in for it: the same
    /// next token at 99% of positions, the same greedy continuation, and the adapter's changes kept.
    public var isFaithful: Bool { top1Agreement >= 0.99 && greedyAgreeing == greedyTokens && adapterChangesKept >= 0.9 }

    /// Compares the model at `exported` with `base` + the adapter at `adapter`, all in float32.
    public static func run(exported: String, base: String, adapter: URL, greedyTokens: Int = 32) throws -> ExportCheck {
        try run(exported: exported, base: base, adapters: [adapter], greedyTokens: greedyTokens)
    }

    /// Compares the model at `exported` with `base` + the adapters stacked in order
    /// (`PEFTAdapter.stack`: the last one live), all in float32.
    public static func run(exported: String, base: String, adapters: [URL], greedyTokens: Int = 32) throws -> ExportCheck {
        let reference = try LoadedModel.load(base, precision: .float32)
        try PEFTAdapter.stack(adapters, into: reference.model)
        let plain = try LoadedModel.load(base, precision: .float32)
        let candidate = try LoadedModel.load(exported, precision: .float32)
        let prompt = reference.promptTokens(conversation)
        guard candidate.promptTokens(conversation) == prompt else {
            throw LanguageModelError.tokenizer("the exported model's tokenizer or chat template turns the check conversation into other tokens than the base model's")
        }
        let referenceGreedy = try greedy(reference, prompt, greedyTokens)
        let candidateGreedy = try greedy(candidate, prompt, greedyTokens)
        // Logits over the prompt and the reference's continuation.
        let sequence = prompt + referenceGreedy
        let r = try logits(reference, sequence), c = try logits(candidate, sequence), p = try logits(plain, sequence)
        let (maxDiff, agree) = try compare(r, c)
        let (baseDiff, baseAgree) = try compare(r, p)
        let agreeing = zip(referenceGreedy, candidateGreedy).prefix { $0 == $1 }.count
        let (rt, ct, pt) = (try r.argMax(axis: -1).asArray(Int32.self), try c.argMax(axis: -1).asArray(Int32.self), try p.argMax(axis: -1).asArray(Int32.self))
        let changed = rt.indices.filter { rt[$0] != pt[$0] }
        let kept = changed.filter { ct[$0] == rt[$0] }.count
        return ExportCheck(positions: sequence.count, maxLogitDifference: maxDiff, top1Agreement: agree,
                           baseMaxLogitDifference: baseDiff, baseTop1Agreement: baseAgree,
                           adapterChangedPositions: changed.count, adapterChangesKept: changed.isEmpty ? 1 : Double(kept) / Double(changed.count),
                           greedyTokens: greedyTokens, greedyAgreeing: agreeing, prompt: prompt, referenceGreedy: referenceGreedy)
    }

    static func logits(_ m: LoadedModel, _ tokens: [Int]) throws -> MLXArray {
        try m.model(try MLXArray(tokens.map(Int32.init), shape: [1, tokens.count]))
    }

    static func compare(_ a: MLXArray, _ b: MLXArray) throws -> (Float, Double) {
        let diff = try (a - b).abs().max().item(Float.self)
        let same = try (a.argMax(axis: -1) .== b.argMax(axis: -1)).asType(.float32).mean().item(Float.self)
        return (diff, Double(same))
    }

    /// Greedy continuation that does not stop at end-of-turn tokens (so engines compare N tokens).
    public static func greedy(_ m: LoadedModel, _ prompt: [Int], _ n: Int) throws -> [Int] {
        let generator = Generator(model: m.model, tokenizer: m.tokenizer)
        generator.stopTokenIds = []
        var parameters = GenerationParameters.greedy
        parameters.maxTokens = n
        return try generator.generate([prompt], parameters: parameters)[0].tokens
    }
}
