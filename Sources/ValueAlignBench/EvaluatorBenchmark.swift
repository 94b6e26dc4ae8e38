import Foundation
import Evaluators
import LanguageModels
import MLXEngine
import ValueSpace

/// `valuealign bench evaluator`: pairs scored per second by the trained value evaluator at a batch
/// of ~200-token pairs, beside one full prefill pass of the embedded model over the same tokens
/// (the anchor: the evaluator's goal is at most 1.25x its cost, i.e. >= 0.8x its speed).
public struct EvaluatorBenchmark {
    public struct Parameters: Sendable {
        public var modelPath: String
        /// nil = the shipped weights.
        public var weightsPath: String?
        public var batchSize = 32
        /// Approximate tokens per pair (prompt and response, chat format included).
        public var pairTokens = 200
        public var iterations = 3
        /// Response lengths (tokens) at which to time whole-text scoring of a few long pairs (its
        /// cost must stay linear in length); empty: skip.
        public var responseLengths: [Int] = [100, 1000, 4000]
        /// Pairs per length.
        public var pairsPerLength = 4
        public init(modelPath: String) { self.modelPath = modelPath }
    }

    let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    /// Deterministic English-like pairs of about `tokens` tokens under `encode`.
    static func syntheticPairs(count: Int, tokens: Int, encode: (ValuePair) -> Int) -> [ValuePair] {
        let subjects = ["the council", "my neighbour", "a small company", "the new teacher", "our team", "the city library", "a volunteer group", "the hospital"]
        let verbs = ["decided to", "was asked to", "tried to", "promised to", "refused to", "planned to"]
        let objects = ["share the budget openly", "help families who lost their homes", "keep the old rules", "win the regional contest",
                       "protect the river from waste", "follow the safety checklist", "take credit for the work", "try something new each week"]
        let closers = ["because it felt fair to everyone.", "even though it cost more time.", "so that people could trust them.",
                       "which surprised many of us.", "after a long discussion.", "and nobody objected."]
        var rng = SplitMix64(seed: 7)
        func sentence() -> String {
            let s = subjects[Int(rng.next() % UInt64(subjects.count))], v = verbs[Int(rng.next() % UInt64(verbs.count))]
            let o = objects[Int(rng.next() % UInt64(objects.count))], c = closers[Int(rng.next() % UInt64(closers.count))]
            return "\(s.prefix(1).uppercased())\(s.dropFirst()) \(v) \(o) \(c)"
        }
        return (0..<count).map { _ in
            let prompt = "What do you think about this? " + sentence() + " " + sentence()
            var response = "Here is my view. "
            while encode(ValuePair(prompt: prompt, response: response + sentence())) <= tokens { response += sentence() + " " }
            return ValuePair(prompt: prompt, response: response)
        }
    }

    public func run(progress: (String) -> Void) throws -> BenchmarkReport {
        let p = parameters
        progress("loading the evaluator")
        let evaluator = try TrainedValueEvaluator.load(weights: p.weightsPath, model: p.modelPath, batchSize: p.batchSize)
        let pairs = Self.syntheticPairs(count: p.batchSize, tokens: p.pairTokens) { evaluator.encode($0).count }
        let encoded = pairs.map { evaluator.encode($0) }
        let meanTokens = Double(encoded.reduce(0) { $0 + $1.count }) / Double(encoded.count)

        progress("evaluator: \(p.batchSize) pairs of ~\(Int(meanTokens)) tokens")
        let evaluatorMs = try medianMilliseconds(warmup: 1, iterations: p.iterations) { _ = try evaluator.evaluateBlocking(pairs) }

        progress("anchor: full prefill of the same tokens")
        let full = try BaseModel.load(p.modelPath)
        let batch = try TokenBatch(prompts: encoded.map(\.prompt), responses: encoded.map(\.response), padTokenId: full.tokenizer.padTokenId)
        let lastPositions = try MLXArray(encoded.map { Int32($0.count - 1) }, shape: [encoded.count, 1, 1])
        let prefillMs = try medianMilliseconds(warmup: 1, iterations: p.iterations) {
            // One prefill as generation runs it: every layer, then next-token logits of each
            // sequence's last real position.
            let out = try full.model.forward(batch.tokens, cache: nil, keyPadding: nil, captureLayers: [])
            let last = try out.hidden.takeAlong(lastPositions, axis: 1)
            try eval(full.model.logits(last))
        }

        var report = BenchmarkReport(benchmark: "evaluator")
        let rate = Double(p.batchSize) / evaluatorMs * 1000, anchorRate = Double(p.batchSize) / prefillMs * 1000
        report.figures.append(BenchmarkFigure(
            name: "scored pairs/s, batch \(p.batchSize)", value: rate, unit: "pairs/s", anchorName: "full prefill of the same pairs",
            anchorValue: anchorRate, higherIsBetter: true, goal: ">= 0.8x (cost <= 1.25x one prefill)"))
        report.figures.append(BenchmarkFigure(name: "evaluator tokens/s", value: rate * meanTokens, unit: "tok/s", higherIsBetter: true))
        report.figures.append(BenchmarkFigure(name: "prefill tokens/s", value: anchorRate * meanTokens, unit: "tok/s", higherIsBetter: true))
        report.notes.append(String(format: "evaluator %@: layers %@ of %d run, poolings %@; %.0f tokens per pair on average; cost %.2fx one prefill pass",
                                   evaluator.name, "\(evaluator.configuration.layers)", evaluator.configuration.baseModel.layerCount,
                                   evaluator.configuration.poolings.map(\.rawValue).joined(separator: "+"), meanTokens, evaluatorMs / prefillMs))
        report.notes.append("BLAS kernels \(BLASCore.current ?? "?"); kernel ISA \(Fast.kernelISA); medians of \(p.iterations) runs after one warm-up")
        for length in p.responseLengths {
            let long = Self.syntheticPairs(count: p.pairsPerLength, tokens: length) { evaluator.tokenCount($0.response) }
            let windows = long.reduce(0) { $0 + evaluator.windows($1).count }
            progress("whole text: \(p.pairsPerLength) responses of ~\(length) tokens (\(windows) windows)")
            let ms = try medianMilliseconds(warmup: 1, iterations: p.iterations) { _ = try evaluator.evaluateBlocking(long) }
            let pairsPerSecond = Double(p.pairsPerLength) / ms * 1000
            report.figures.append(BenchmarkFigure(name: "whole-text pairs/s at \(length) response tokens", value: pairsPerSecond, unit: "pairs/s", higherIsBetter: true))
            report.figures.append(BenchmarkFigure(name: "whole-text response tokens/s at \(length)", value: pairsPerSecond * Double(length), unit: "tok/s", higherIsBetter: true))
        }
        return report
    }
}
