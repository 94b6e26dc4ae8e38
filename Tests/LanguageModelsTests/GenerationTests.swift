import LanguageModels
import MLXEngine
import Testing
import ValueAlignTesting

@Suite struct GenerationTests {
    let model: any CausalLanguageModel
    let tokenizer = ByteTokenizer()
    let prompts: [[Int]]

    init() throws {
        model = try TinyModels.llama(TinyModels.llamaConfiguration(vocabulary: 260), seed: 3)
        let t = ByteTokenizer()
        prompts = ["Hello there", "A", "Values matter when models act."].map { t.encode($0) }
    }

    func generator() -> Generator { Generator(model: model, tokenizer: tokenizer) }

    @Test func batchedGreedyEqualsUnbatched() throws {
        let p = GenerationParameters(maxTokens: 12)
        let batched = try generator().generate(prompts, parameters: p)
        for (i, prompt) in prompts.enumerated() {
            let alone = try generator().generate([prompt], parameters: p)[0]
            #expect(batched[i].tokens == alone.tokens, "prompt \(i)")
            #expect(batched[i].promptTokens == prompt.count)
        }
    }

    @Test func batchedSamplingEqualsUnbatchedWithTheSequenceSeed() throws {
        let p = GenerationParameters(maxTokens: 10, temperature: 1.3, topK: 50, topP: 0.95, minP: 0.01, repetitionPenalty: 1.2, seed: 42)
        let batched = try generator().generate(prompts, parameters: p)
        for (i, prompt) in prompts.enumerated() {
            var q = p
            q.seed = 42 + UInt64(i)
            let alone = try generator().generate([prompt], parameters: q)[0]
            #expect(batched[i].tokens == alone.tokens, "prompt \(i)")
        }
        // Same seed, same output; another seed, another output.
        #expect(try generator().generate(prompts, parameters: p).map(\.tokens) == batched.map(\.tokens))
        var other = p
        other.seed = 7
        #expect(try generator().generate(prompts, parameters: other).map(\.tokens) != batched.map(\.tokens))
    }

    @Test func maxTokensEndsWithLength() throws {
        let r = try generator().generate([prompts[0]], parameters: GenerationParameters(maxTokens: 5))[0]
        #expect(r.tokens.count == 5)
        #expect(r.finishReason == .length)
        let none = try generator().generate([prompts[0]], parameters: GenerationParameters(maxTokens: 0))[0]
        #expect(none.tokens.isEmpty && none.finishReason == .length)
    }

    @Test func stopTokenEndsOneSequenceAndTheOthersContinue() throws {
        let p = GenerationParameters(maxTokens: 8)
        let free = try generator().generate(prompts, parameters: p)
        let stopId = free[0].tokens[2]
        let g = generator()
        g.stopTokenIds.insert(stopId)
        let stopped = try g.generate(prompts, parameters: p)
        let first = free[0].tokens.firstIndex(of: stopId)!
        #expect(stopped[0].tokens == Array(free[0].tokens[..<first]))
        #expect(stopped[0].finishReason == .stop)
        for i in 1..<prompts.count {
            let cut = free[i].tokens.firstIndex(of: stopId) ?? free[i].tokens.count
            #expect(stopped[i].tokens == Array(free[i].tokens[..<cut]), "prompt \(i)")
        }
    }

    @Test func stopStringCutsTextAndStreamingPiecesConcatenate() throws {
        let p = GenerationParameters(maxTokens: 16, temperature: 0.8, seed: 1)
        let free = try generator().generate(prompts, parameters: p)
        // Pick a stop string from the middle of the first answer's text.
        let scalars = Array(free[0].text.unicodeScalars)
        try #require(scalars.count >= 6)
        var stopView = String.UnicodeScalarView()
        stopView.append(contentsOf: scalars[3..<5])
        let stop = String(stopView)
        var q = p
        q.stop = [stop]
        var pieces = [String](repeating: "", count: prompts.count)
        let stopped = try generator().generate(prompts, parameters: q, onText: { i, piece in
            pieces[i] += piece
            return true
        })
        #expect(!stopped[0].text.contains(stop))
        #expect(free[0].text.hasPrefix(stopped[0].text))
        #expect(stopped[0].finishReason == .stop)
        for i in prompts.indices { #expect(pieces[i] == stopped[i].text, "prompt \(i)") }
    }

    @Test func cancellationFromTheTextCallback() throws {
        #expect(throws: CancellationError.self) {
            try generator().generate(prompts, parameters: GenerationParameters(maxTokens: 8), onText: { _, _ in false })
        }
    }

    @Test func badPromptsAreRejected() throws {
        #expect(throws: LanguageModelError.invalidParameter(field: "prompts[1]", message: "prompt has no tokens")) {
            try generator().generate([[1], []], parameters: .greedy)
        }
        #expect(throws: LanguageModelError.self) { try generator().generate([[1, 999]], parameters: .greedy) }
        #expect(throws: LanguageModelError.self) { try generator().generate([[1]], parameters: GenerationParameters(maxTokens: 1000)) }
    }
}

@Suite struct SamplerTests {
    let logits = try! MLXArray([Float(1), 3, 2, 0.5, -1, 2.9], shape: [1, 6])

    @Test func filtersThatKeepOneTokenAreGreedy() throws {
        for p in [GenerationParameters(temperature: 1, topK: 1, seed: 1), GenerationParameters(temperature: 1, topP: 0.01, seed: 1),
                  GenerationParameters(temperature: 1, minP: 0.99, seed: 1)] {
            for step in 0..<10 {
                #expect(try Sampler(parameters: p).sample(logits, history: [[]], streams: [0], step: step).item(Int32.self) == 1)
            }
        }
    }

    @Test func topKTwoOnlyDrawsTheTwoBest() throws {
        let s = try Sampler(parameters: GenerationParameters(temperature: 5, topK: 2, seed: 9))
        var seen = Set<Int32>()
        for step in 0..<60 { seen.insert(try s.sample(logits, history: [[]], streams: [0], step: step).item(Int32.self)) }
        #expect(seen == [1, 5])
    }

    @Test func samplingFrequenciesFollowTheSoftmax() throws {
        // 4000 draws at temperature 1 over [0, log 3]: P(1) = 3/4.
        let l = try MLXArray([Float(0), Float(log(3.0))], shape: [1, 2])
        let rows = try MLXArray.zeros([4000, 2]) + l
        let s = try Sampler(parameters: GenerationParameters(temperature: 1, seed: 5))
        let draws = try s.sample(rows, history: [[Int]](repeating: [], count: 4000), streams: Array(0..<4000), step: 0).asArray(Int32.self)
        let share = Double(draws.filter { $0 == 1 }.count) / 4000
        #expect(abs(share - 0.75) < 0.03)
    }

    @Test func topPKeepsTheSmallestPrefixAndRenormalises() throws {
        // p = (0.5, 0.3, 0.2): top-p 0.6 keeps the first two, drawn 5:3.
        let l = try MLXArray([Float(log(0.5)), Float(log(0.3)), Float(log(0.2))], shape: [1, 3])
        let rows = try MLXArray.zeros([4000, 3]) + l
        let s = try Sampler(parameters: GenerationParameters(temperature: 1, topP: 0.6, seed: 3))
        let draws = try s.sample(rows, history: [[Int]](repeating: [], count: 4000), streams: Array(0..<4000), step: 0).asArray(Int32.self)
        #expect(!draws.contains(2))
        let share = Double(draws.filter { $0 == 0 }.count) / 4000
        #expect(abs(share - 0.625) < 0.03)
        // min-p 0.5 after that keeps both (0.3/0.5 >= 0.5); min-p 0.7 only the first.
        let m = try Sampler(parameters: GenerationParameters(temperature: 1, topP: 0.6, minP: 0.7, seed: 3))
        #expect(try m.sample(rows, history: [[Int]](repeating: [], count: 4000), streams: Array(0..<4000), step: 0).asArray(Int32.self).allSatisfy { $0 == 0 })
    }

    @Test func repetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() throws {
        let s = try Sampler(parameters: GenerationParameters(repetitionPenalty: 2))
        let out = try s.penalize(logits, history: [[1, 4, 1]]).asArray(Float.self)
        #expect(out == [1, 1.5, 2, 0.5, -2, 2.9])
        // With the penalty, greedy moves from token 1 (3 -> 1.5) to token 5 (2.9).
        #expect(try s.sample(logits, history: [[1]], streams: [0], step: 0).item(Int32.self) == 5)
    }
}

import Foundation
