import LanguageModels
import MLXEngine
import Testing
import ValueAlignTesting

@Suite struct TokenLogProbTests {
    @Test("each generated token's log-probability equals a full forward's; alternatives are the most likely, in order")
    func matchesScoring() throws {
        let model = try TinyModels.llama(TinyModels.llamaConfiguration(vocabulary: 260), seed: 3)
        let tokenizer = ByteTokenizer()
        let prompts = ["Hello there", "A longer prompt, padded in the batch."].map { tokenizer.encode($0) }
        let generator = Generator(model: model, tokenizer: tokenizer)
        let sampled = try generator.generate(prompts, parameters: GenerationParameters(maxTokens: 6, temperature: 1.5, seed: 7, topLogProbs: 5))
        let plain = try generator.generate(prompts, parameters: GenerationParameters(maxTokens: 6, temperature: 1.5, seed: 7))
        #expect(sampled.map(\.tokens) == plain.map(\.tokens), "asking for log-probabilities does not change what is generated")
        #expect(plain.allSatisfy { $0.logProbs == nil })
        for (i, s) in sampled.enumerated() {
            let lp = try #require(s.logProbs)
            #expect(lp.count == s.tokens.count)
            let scored = try model.tokenLogProbs(TokenBatch(prompts: [prompts[i]], responses: [s.tokens], padTokenId: tokenizer.padTokenId)).asArray(Float.self)
            let expected = Array(scored.suffix(from: prompts[i].count - 1).prefix(s.tokens.count))
            for (t, entry) in lp.enumerated() {
                #expect(abs(entry.logProb - Double(expected[t])) < 1e-3, "prompt \(i) token \(t): \(entry.logProb) vs \(expected[t])")
                #expect(entry.top.count == 5)
                #expect(zip(entry.top, entry.top.dropFirst()).allSatisfy { $0.logProb >= $1.logProb })
                #expect(entry.top[4].logProb <= entry.logProb || entry.top.contains { $0.bytes == entry.bytes })
                #expect(entry.bytes == tokenizer.bytes(of: [s.tokens[t]], skipSpecialTokens: false))
            }
        }
        #expect { try GenerationParameters(topLogProbs: 21).validate() } throws: { "\($0)".contains("topLogProbs") }
    }
}
