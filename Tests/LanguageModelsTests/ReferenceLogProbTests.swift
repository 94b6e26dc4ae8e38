import Foundation
import LanguageModels
import MLXEngine
import Testing

/// SmolLM2's next-token log-probabilities against an independent implementation (Hugging Face
/// transformers' GGUF loader in float32; scripts/fixtures/reference_logprobs.py made the fixture).
@Suite(.serialized, .enabled(if: Embedded.path != nil)) struct ReferenceLogProbTests {
    struct Fixture: Decodable {
        struct Prompt: Decodable {
            var text: String
            var token_ids: [Int]
            var next_token_argmax: Int
            var final_hidden_first8: [Float]
        }
        var perplexity: Double
        var token_ids: [Int]
        var target_logprobs: [Float]
        var argmax_ids: [Int]
        var prompts: [Prompt]
    }

    static let fixtureURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/reference/smollm2_logprobs.json")

    func fixture() throws -> Fixture { try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: Self.fixtureURL)) }

    @Test func perplexityWithinOnePercentAndArgmaxAgrees() throws {
        let f = try fixture()
        let model = try #require(Embedded.backend).loaded.model
        let ids = f.token_ids.map(Int32.init)
        let logProbs = try model(MLXArray(ids, shape: [1, ids.count]))[0].logSoftmax(axis: -1)
        let targets = try MLXArray(ids.dropFirst().map { $0 }, shape: [ids.count - 1, 1])
        let picked = try logProbs.index([.stride(nil, -1, 1)]).takeAlong(targets, axis: -1).squeezed(axis: -1).asArray(Float.self)
        let argmax = try logProbs.index([.stride(nil, -1, 1)]).argMax(axis: -1).asArray(Int32.self).map(Int.init)
        #expect(picked.count == f.target_logprobs.count)
        let nll = -picked.reduce(0.0) { $0 + Double($1) } / Double(picked.count)
        let perplexity = exp(nll)
        let relative = abs(perplexity - f.perplexity) / f.perplexity
        #expect(relative < 0.01, "perplexity \(perplexity) vs reference \(f.perplexity)")
        let agree = zip(argmax, f.argmax_ids).filter { $0 == $1 }.count
        #expect(Double(agree) / Double(argmax.count) >= 0.99, "argmax agrees on \(agree)/\(argmax.count)")
        let worst = zip(picked, f.target_logprobs).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 0.05, "largest per-token log-prob difference \(worst)")
    }

    @Test func promptsGiveTheSameNextTokenAndHiddenState() throws {
        let f = try fixture()
        let loaded = try #require(Embedded.backend).loaded
        for p in f.prompts {
            // Our tokenizer gives the reference's ids too.
            #expect(loaded.tokenizer.encode(p.text, addSpecialTokens: false, parseSpecialTokens: false) == p.token_ids)
            let out = try loaded.model.forward(MLXArray(p.token_ids.map(Int32.init), shape: [1, p.token_ids.count]), cache: nil, keyPadding: nil,
                                               captureLayers: [loaded.model.configuration.layerCount])
            let last = try out.hidden[0, p.token_ids.count - 1]
            #expect(try loaded.model.logits(last).argMax().item(Int32.self) == Int32(p.next_token_argmax), "\(p.text)")
            let first8 = try last.index([.stride(0, 8, 1)]).asArray(Float.self)
            for (a, b) in zip(first8, p.final_hidden_first8) { #expect(abs(a - b) < 0.02, "\(p.text): hidden \(first8) vs \(p.final_hidden_first8)") }
        }
    }
}
