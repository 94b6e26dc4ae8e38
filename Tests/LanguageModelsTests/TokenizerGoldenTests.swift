import Foundation
import LanguageModels
import Testing

/// Token-for-token agreement with Hugging Face `tokenizers` (the golden files of
/// scripts/fixtures/tokenizer_golden.py).
@Suite("Tokenizer golden")
struct TokenizerGoldenTests {
    // MARK: pre-tokenizers (no vocabulary needed)

    @Test("pre-tokenizer pieces equal the reference's", arguments: [
        ("smollm2", PreTokenizer.smollm), ("tiny_llama3", .llama3), ("tiny_qwen2", .qwen2), ("tiny_gpt2", .gpt2),
    ])
    func pieces(golden name: String, preTokenizer: PreTokenizer) throws {
        let golden = try TokenizerFixtures.golden(name)
        #expect(golden.cases.count > 80)
        for c in golden.cases {
            let pieces = preTokenizer.pieces(of: c.text)
            #expect(pieces.joined() == c.text, "\(c.name): pieces do not concatenate to the text")
            #expect(pieces.map(byteLevelSpelling) == c.pieces, "\(c.name)")
        }
    }

    // MARK: tiny tokenizers (tokenizer.json path)

    @Test("tiny tokenizer.json tokenizers encode every case as the reference does", arguments: TokenizerFixtures.tinyVariants)
    func tinyEncode(variant: String) throws {
        let tokenizer = try TokenizerFixtures.tiny(variant)
        let golden = try TokenizerFixtures.golden(variant)
        #expect(tokenizer.vocabularySize == golden.vocabulary_size)
        for c in golden.cases {
            #expect(tokenizer.encode(c.text, addSpecialTokens: false, parseSpecialTokens: true) == c.ids, "\(c.name)")
            #expect(tokenizer.encode(c.text, addSpecialTokens: false, parseSpecialTokens: false) == c.ids_no_special, "\(c.name), special tokens as text")
            if let withSpecial = c.ids_with_special {
                #expect(tokenizer.encode(c.text, addSpecialTokens: true, parseSpecialTokens: true) == withSpecial, "\(c.name), with BOS")
            }
            #expect(tokenizer.decode(c.ids) == c.decoded, "\(c.name): decode")
        }
    }

    // MARK: SmolLM2 (GGUF path)

    @Test("SmolLM2's GGUF tokenizer encodes every case as the reference does",
          .enabled(if: TokenizerFixtures.modelPath != nil, "set VALUEALIGN_MODEL to the SmolLM2 GGUF file"))
    func smolLM2Encode() throws {
        let tokenizer = try #require(TokenizerFixtures.smolLM2).get().tokenizer
        let golden = try TokenizerFixtures.golden("smollm2")
        #expect(tokenizer.vocabularySize == golden.vocabulary_size)
        #expect(tokenizer.preTokenizer == .smollm)
        for c in golden.cases {
            #expect(tokenizer.encode(c.text, addSpecialTokens: false, parseSpecialTokens: true) == c.ids, "\(c.name)")
            #expect(tokenizer.encode(c.text, addSpecialTokens: false, parseSpecialTokens: false) == c.ids_no_special, "\(c.name), special tokens as text")
            #expect(tokenizer.decode(c.ids) == c.decoded, "\(c.name): decode")
        }
    }

    @Test("SmolLM2's lossy decodes of split characters equal Rust's from_utf8_lossy",
          .enabled(if: TokenizerFixtures.modelPath != nil, "set VALUEALIGN_MODEL to the SmolLM2 GGUF file"))
    func smolLM2Decode() throws {
        let tokenizer = try #require(TokenizerFixtures.smolLM2).get().tokenizer
        let cases = try #require(try TokenizerFixtures.golden("smollm2").decode_cases)
        #expect(cases.count >= 10)
        for c in cases {
            #expect(tokenizer.decode(c.ids, skipSpecialTokens: false) == c.text, "\(c.name)")
            #expect(tokenizer.decode(c.ids, skipSpecialTokens: true) == c.text_skip_special, "\(c.name), skipping special tokens")
        }
    }
}
