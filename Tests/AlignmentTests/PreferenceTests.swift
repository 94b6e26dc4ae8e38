import Alignment
import Foundation
import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting
import ValueSpace

@Suite struct PreferenceTests {
    let pairs = [
        PreferenceExample(prompt: [.user("Is it safe?")], chosen: "yes, it is", rejected: "no way"),
        PreferenceExample(prompt: [.user("Help me")], chosen: "gladly", rejected: "go away"),
        PreferenceExample(prompt: [.user("Thanks")], chosen: "you are welcome", rejected: "whatever"),
        PreferenceExample(prompt: [.user("Hi")], chosen: "hello there", rejected: "hmph"),
    ]

    @Test func dpoLossIsLog2AtStepZero() throws {
        let loaded = try tinyLoaded()
        let objective = PreferenceObjective(model: loaded, examples: pairs)
        var first: TrainingProgress?
        try TrainingRunner(objective: objective, parameters: toyParameters(PreferenceObjective.self, steps: 1, batchSize: 4)).run {
            first = $0
            return true
        }
        let p = try #require(first)
        #expect(abs(p.loss - log(2)) <= 1e-6)
        // Policy and reference agree up to float32 rounding: 1.1e-6 on an AVX-512 AMD EPYC
        // (OpenBLAS's Cooperlake kernels), at f78d6ad as well as now; under 1e-6 on the Intel VM.
        #expect(abs(p.metrics["rewards/margins"]!) <= 1e-5)
        // The reference pass really ran without the adapter: after one update the policy moved
        // while the reference (adapters disabled) equals the untouched base model.
        let base = try tinyLoaded()
        let batch = try TokenBatch(prompts: [[10, 11, 12]], responses: [[13, 14]], padTokenId: 256)
        let reference = try loaded.model.withAdaptersDisabled { try loaded.model.sequenceLogProbs(batch).item(Float.self) }
        #expect(reference == (try base.model.sequenceLogProbs(batch).item(Float.self)))
        #expect(reference != (try loaded.model.sequenceLogProbs(batch).item(Float.self)))
        #expect(loaded.model.hasLoRA, "the adapters are back after the reference pass")
    }

    @Test(arguments: [PreferenceObjective.Loss.dpo, .ipo])
    func trainingRaisesTheChosenOverRejectedMargin(loss: PreferenceObjective.Loss) throws {
        var options = PreferenceObjective.Options()
        options.loss = loss
        var p = toyParameters(PreferenceObjective.self, steps: 25, batchSize: 4, learningRate: 5e-3)
        p.maxGradientNorm = 0
        var history: [TrainingProgress] = []
        try TrainingRunner(objective: PreferenceObjective(model: try tinyLoaded(), examples: pairs, options: options), parameters: p).run {
            history.append($0)
            return true
        }
        #expect(history.count == 25)
        let firstMargin = history[0].metrics["rewards/margins"]!, lastMargin = history.last!.metrics["rewards/margins"]!
        // IPO regresses h towards 1/(2 beta) = 5, i.e. a reward margin of beta * 5 = 0.5.
        #expect(lastMargin > firstMargin + (loss == .dpo ? 0.5 : 0.3), "margin \(firstMargin) -> \(lastMargin)")
        #expect(history.last!.metrics["rewards/accuracies"]! == 1)
        #expect(history.last!.loss < history[0].loss)
        if loss == .ipo {
            // IPO's loss at h = 0 is (1 / (2 beta))^2 = 25.
            #expect(abs(history[0].loss - 25) <= 1e-3)
        }
    }

    @Test("a precomputed reference gives the per-batch reference's values and the same training over three epochs")
    func precomputedReferenceMatchesPerBatch() throws {
        // More pairs than one reference chunk, batches that mix them across chunks.
        let many = (0..<11).map { i in
            PreferenceExample(prompt: [.user("question \(i)\(String(repeating: "?", count: i % 4))")],
                              chosen: "answer \(i) " + String(repeating: "yes ", count: 1 + i % 3), rejected: "no \(i)")
        }
        let loaded = try tinyLoaded()
        var off = PreferenceObjective.Options()
        off.precomputeReference = false
        let cached = PreferenceObjective(model: loaded, examples: many), perBatch = PreferenceObjective(model: loaded, examples: many, options: off)
        for indices in [[0, 9, 3], [10], [8, 7, 6, 5, 4, 2, 1]] {
            let a = try cached.prepare(indices, seed: 1).batch.reference, b = try perBatch.prepare(indices, seed: 1).batch.reference
            #expect(a.shape == [2 * indices.count])
            try expectClose(a, b, atol: 1e-4, rtol: 1e-5)
        }
        // Three epochs of training: the same losses either way.
        func losses(_ options: PreferenceObjective.Options) throws -> [Double] {
            var p = toyParameters(PreferenceObjective.self, steps: 9, batchSize: 4, learningRate: 5e-3)
            p.maxGradientNorm = 0
            var out: [Double] = []
            try TrainingRunner(objective: PreferenceObjective(model: try tinyLoaded(), examples: many, options: options), parameters: p).run {
                out.append($0.loss)
                return true
            }
            return out
        }
        let x = try losses(PreferenceObjective.Options()), y = try losses(off)
        #expect(x.count == 9 && y.count == 9)
        for (u, v) in zip(x, y) { #expect(abs(u - v) <= 1e-3 * max(1, abs(v)), "\(x) vs \(y)") }
        #expect(x.last! < x.first!)
    }

    @Test func badPreferenceSettingsAreRejected() throws {
        var options = PreferenceObjective.Options()
        options.beta = 0
        let runner = TrainingRunner(objective: PreferenceObjective(model: try tinyLoaded(), examples: pairs, options: options),
                                    parameters: toyParameters(PreferenceObjective.self, steps: 1, batchSize: 2))
        #expect(throws: TrainingError.invalidConfiguration(field: "beta", message: "must be a finite number > 0, got 0.0")) { try runner.validate() }
    }

    @Test func hhPairsBecomeExamples() throws {
        let pair = PreferencePair(context: [.user("a"), .assistant("b"), .user("c")], chosen: "d", rejected: "e", line: 3)
        let e = PreferenceExample(pair)
        #expect(e.prompt.count == 3 && e.chosen == "d" && e.rejected == "e")
    }

    /// An answer cut by the token limit is trained without the end-of-turn token (else best-of-N
    /// and DPO on short samples teach the model to stop mid-sentence); files written before the
    /// flag existed read as finished.
    @Test func answersCutByTheTokenLimitGetNoEndOfTurn() throws {
        let loaded = try tinyLoaded()
        let encoder = ChatEncoder(loaded)
        let end = try #require(encoder.endOfTurn)
        #expect(encoder.response("abc").last == end)
        #expect(encoder.response("abc", finished: false) == Array(encoder.response("abc").dropLast()))

        let cut = SFTExample(prompt: [.user("hi")], response: "abc", finished: false)
        let whole = SFTExample(prompt: [.user("hi")], response: "abc")
        func tokens(_ e: SFTExample) throws -> Int { try SFTObjective(model: loaded, examples: [e]).prepare([0], seed: 1).tokens }
        #expect(try tokens(whole) == tokens(cut) + 1)

        let best = try #require(SFTExample.bestOfN(prompt: [.user("q")], candidates: ["a", "b", "c"], rewards: [0.1, 0.9, 0.5], finished: [true, false, true]))
        #expect(best.response == "b" && !best.finished)
        #expect(SFTExample.bestOfN(prompt: [.user("q")], candidates: ["a", "b"], rewards: [0.1, 0.9], finished: [true]) == nil)
        #expect(SFTExample.bestOfN(prompt: [.user("q")], candidates: ["a", "b"], rewards: [0.1, 0.9])?.finished == true)

        let old = Data(#"{"prompt": [{"role": "user", "content": "q"}], "response": "r"}"#.utf8)
        #expect(try JSONDecoder().decode(SFTExample.self, from: old).finished)
        let oldPair = Data(#"{"prompt": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": "b"}"#.utf8)
        let pair = try JSONDecoder().decode(PreferenceExample.self, from: oldPair)
        #expect(pair.chosenFinished && pair.rejectedFinished)
        let cutPair = PreferenceExample(prompt: [.user("q")], chosen: "a", rejected: "b", chosenFinished: false)
        let roundTrip = try JSONDecoder().decode(PreferenceExample.self, from: JSONEncoder().encode(cutPair))
        #expect(roundTrip == cutPair && !roundTrip.chosenFinished && roundTrip.rejectedFinished)
    }
}
