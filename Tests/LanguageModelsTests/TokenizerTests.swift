import Foundation
import LanguageModels
import MLXEngine
import Testing
import ValueAlignTesting

/// Round trips, streaming, special tokens, construction errors and speed of `BPETokenizer`.
@Suite("Tokenizer")
struct TokenizerTests {
    // MARK: round trips

    @Test("decode(encode(text)) gives the text back", arguments: TokenizerFixtures.tinyVariants)
    func tinyRoundTrip(variant: String) throws {
        let tokenizer = try TokenizerFixtures.tiny(variant)
        for c in try TokenizerFixtures.golden(variant).cases {
            // Qwen2 normalizes to NFC before tokenizing.
            let expected = tokenizer.normalization == .nfc ? c.text.precomposedStringWithCanonicalMapping : c.text
            for parse in [true, false] {
                let ids = tokenizer.encode(c.text, addSpecialTokens: false, parseSpecialTokens: parse)
                #expect(tokenizer.decode(ids).unicodeScalars.elementsEqual(expected.unicodeScalars), "\(c.name), parse \(parse)")
            }
        }
    }

    @Test("SmolLM2 round trips, dropping only bytes its vocabulary lacks",
          .enabled(if: TokenizerFixtures.modelPath != nil, "set VALUEALIGN_MODEL to the SmolLM2 GGUF file"))
    func smolLM2RoundTrip() throws {
        let tokenizer = try #require(TokenizerFixtures.smolLM2).get().tokenizer
        let missing = Set((0...255).map(UInt8.init).filter { tokenizer.tokenId(byteLevelCharacter($0)) == nil })
        // Bytes that never occur in UTF-8 (C0, C1, F5-FF) and a few rare control characters.
        #expect(missing.contains(0xC0) && missing.contains(0xFF) && !missing.contains(UInt8(ascii: "a")))
        var sawMissing = false
        for c in try TokenizerFixtures.golden("smollm2").cases {
            let expected = c.text.utf8.filter { !missing.contains($0) }
            sawMissing = sawMissing || expected.count != c.text.utf8.count
            let decoded = tokenizer.decode(tokenizer.encode(c.text))
            #expect(Array(decoded.utf8) == expected, "\(c.name)")
        }
        #expect(sawMissing, "the corpus should hold a character whose byte SmolLM2's vocabulary lacks")
    }

    // MARK: streaming

    @Test("streamed pieces concatenate to the full decode", arguments: TokenizerFixtures.tinyVariants)
    func streamingEqualsDecode(variant: String) throws {
        let tokenizer = try TokenizerFixtures.tiny(variant)
        for c in try TokenizerFixtures.golden(variant).cases {
            for skip in [false, true] {
                var stream = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: skip)
                var pieces: [String] = []
                for id in c.ids { pieces.append(stream.append(id)) }
                pieces.append(stream.finish())
                #expect(pieces.joined() == tokenizer.decode(c.ids, skipSpecialTokens: skip), "\(c.name), skip \(skip)")
                // Valid text never shows a replacement character mid-stream.
                if !c.decoded.contains("\u{FFFD}") {
                    #expect(!pieces.contains { $0.contains("\u{FFFD}") }, "\(c.name)")
                }
            }
        }
    }

    @Test("a character split across byte tokens is held back until complete")
    func streamingHoldsBackPartialCharacters() throws {
        let tokenizer = try TokenizerFixtures.tiny("tiny_llama3")
        let byte = { (b: UInt8) throws -> Int in try #require(tokenizer.tokenId(byteLevelCharacter(b))) }
        let pizza = "\u{1F355}"
        // "a", the four bytes of the emoji one token each, "b".
        let ids = try [byte(UInt8(ascii: "a"))] + pizza.utf8.map(byte) + [byte(UInt8(ascii: "b"))]
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        let pieces = ids.map { stream.append($0) }
        #expect(pieces == ["a", "", "", "", pizza, "b"])
        #expect(!stream.hasPendingBytes)
        // An unfinished character is flushed lossily.
        var truncated = StreamingDetokenizer(tokenizer: tokenizer)
        #expect(ids.prefix(3).map { truncated.append($0) } == ["a", "", ""])
        #expect(truncated.hasPendingBytes)
        #expect(truncated.finish() == "\u{FFFD}")
        #expect(!truncated.hasPendingBytes)
    }

    @Test("SmolLM2 streams its crafted invalid sequences as the reference decodes them",
          .enabled(if: TokenizerFixtures.modelPath != nil, "set VALUEALIGN_MODEL to the SmolLM2 GGUF file"))
    func smolLM2StreamingLossy() throws {
        let tokenizer = try #require(TokenizerFixtures.smolLM2).get().tokenizer
        for c in try #require(try TokenizerFixtures.golden("smollm2").decode_cases) {
            for (skip, expected) in [(false, c.text), (true, c.text_skip_special)] {
                var stream = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: skip)
                let text = c.ids.map { stream.append($0) }.joined() + stream.finish()
                #expect(text == expected, "\(c.name), skip \(skip)")
            }
        }
    }

    @Test("lossy decoding of random bytes agrees with the standard library's UTF-8 repair")
    func lossyDecodingOfRandomBytes() throws {
        let tokenizer = try TokenizerFixtures.tiny("tiny_gpt2")
        let byteIds = try (0...255).map { byte in try #require(tokenizer.tokenId(byteLevelCharacter(UInt8(byte)))) }
        var generator = SeededGenerator(seed: 42)
        // Mostly bytes that matter to UTF-8: ASCII, lead bytes of every length, continuations.
        let pool: [UInt8] = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF3, 0xF4, 0xF5, 0xFF]
        for _ in 0..<2000 {
            let count = Int(generator.next() % 9)
            let bytes = (0..<count).map { _ in pool[Int(generator.next() % UInt64(pool.count))] }
            let decoded = tokenizer.decode(bytes.map { byteIds[Int($0)] })
            #expect(decoded == String(decoding: bytes, as: UTF8.self), "bytes \(bytes.map { String($0, radix: 16) })")
            var stream = StreamingDetokenizer(tokenizer: tokenizer)
            #expect(bytes.map { stream.append(byteIds[Int($0)]) }.joined() + stream.finish() == decoded)
        }
    }

    // MARK: special tokens

    @Test("special tokens are parsed only when asked; plain added tokens always")
    func specialTokenParsing() throws {
        let tokenizer = try TokenizerFixtures.tiny("tiny_llama3")
        let header = try #require(tokenizer.tokenId("<|start_header_id|>"))
        let headerEnd = try #require(tokenizer.tokenId("<|end_header_id|>"))
        let tool = try #require(tokenizer.tokenId("[[tool]]"))
        #expect(tokenizer.isSpecialToken(header) && !tokenizer.isSpecialToken(tool))
        let text = "<|start_header_id|>user<|end_header_id|> [[tool]]"

        let parsed = tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: true)
        #expect(parsed.first == header)
        #expect(parsed.contains(headerEnd) && parsed.contains(tool))

        let plain = tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: false)
        #expect(plain.count > parsed.count)
        #expect(!plain.contains { tokenizer.isSpecialToken($0) })
        #expect(plain.contains(tool), "a plain added token matches even when special tokens are text")
        #expect(tokenizer.decode(plain) == text && tokenizer.decode(parsed) == text)

        #expect(tokenizer.decode(parsed, skipSpecialTokens: true) == "user [[tool]]")
        #expect(tokenizer.decode(parsed + [tokenizer.vocabularySize, -1]) == text, "ids outside the vocabulary decode to nothing")
    }

    @Test("the longest added token wins where several start at the same place")
    func longestAddedTokenFirst() throws {
        let alphabet = (0...255).map { byteLevelCharacter(UInt8($0)) }
        let tokenizer = try BPETokenizer(
            tokens: alphabet, merges: [],
            addedTokens: [
                .init(content: "<a>", id: 256, isSpecial: true), .init(content: "<a>b", id: 257, isSpecial: true),
                .init(content: "<x>", id: 258, isSpecial: false, leftStrip: true, rightStrip: true),
            ],
            preTokenizer: .gpt2)
        #expect(tokenizer.encode("<a>b<a>c") == [257, 256, Int(UInt8(ascii: "c"))])
        #expect(tokenizer.encode("q  <x>\t r") == [Int(UInt8(ascii: "q")), 258, Int(UInt8(ascii: "r"))], "strip swallows the whitespace around")
        #expect(tokenizer.vocabularySize == 259)
    }

    @Test("BOS and EOS settings of each source")
    func specialTokenSettings() throws {
        let llama = try TokenizerFixtures.tiny("tiny_llama3")
        let bos = try #require(llama.tokenId("<|begin_of_text|>"))
        #expect(llama.bosTokenId == bos && llama.addBOS)
        #expect(llama.encode("hi", addSpecialTokens: true, parseSpecialTokens: true).first == bos)
        #expect(llama.encode("hi").first != bos, "the default encode adds no special tokens")
        let eot = try #require(llama.tokenId("<|eot_id|>"))
        #expect(llama.eosTokenId == eot && llama.eosTokenIds.contains(eot) && llama.padTokenId == eot)
        #expect(llama.eosTokenIds.contains(try #require(llama.tokenId("<|end_of_text|>"))))

        let qwen = try TokenizerFixtures.tiny("tiny_qwen2")
        #expect(qwen.bosTokenId == nil && !qwen.addBOS && qwen.normalization == .nfc && qwen.preTokenizer == .qwen2)
    }

    @Test("SmolLM2's special tokens come from the GGUF metadata",
          .enabled(if: TokenizerFixtures.modelPath != nil, "set VALUEALIGN_MODEL to the SmolLM2 GGUF file"))
    func smolLM2SpecialTokens() throws {
        let model = try #require(TokenizerFixtures.smolLM2).get()
        let tokenizer = model.tokenizer
        // The GGUF stores add_bos_token = false; it must read as a number, not be missing.
        #expect(model.metadata["tokenizer.ggml.add_bos_token"]?.int == 0)
        let imStart = try #require(tokenizer.tokenId("<|im_start|>"))
        let imEnd = try #require(tokenizer.tokenId("<|im_end|>"))
        #expect(tokenizer.bosTokenId == imStart && !tokenizer.addBOS)
        #expect(tokenizer.eosTokenId == imEnd && tokenizer.padTokenId == imEnd)
        #expect(tokenizer.eosTokenIds == [imEnd, try #require(tokenizer.tokenId("<|endoftext|>"))])
        #expect(tokenizer.encode("hi", addSpecialTokens: true, parseSpecialTokens: true) == tokenizer.encode("hi"))
        #expect(tokenizer.addedTokens.count == 17 && tokenizer.addedTokens.allSatisfy(\.isSpecial))
        #expect(tokenizer.token(imEnd) == "<|im_end|>")
    }

    // MARK: GGUF metadata

    /// A small vocabulary in GGUF form: three control tokens, the byte alphabet, four merges.
    static func ggufMetadata(dropping: String? = nil, overriding: [String: GGUFValue] = [:]) -> [String: GGUFValue] {
        let tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + (0...255).map { byteLevelCharacter(UInt8($0)) }
            + ["he", "ll", "hell", "hello"]
        var metadata: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("gpt2"),
            "tokenizer.ggml.pre": .string("gpt-2"),
            "tokenizer.ggml.tokens": .strings(tokens),
            "tokenizer.ggml.merges": .strings(["h e", "l l", "he ll", "hell o"]),
            "tokenizer.ggml.token_type": .array(MLXArray([Int32](repeating: 3, count: 3) + [Int32](repeating: 1, count: tokens.count - 3))),
            "tokenizer.ggml.bos_token_id": .array(MLXArray([Int32(1)])),
            "tokenizer.ggml.eos_token_id": .array(MLXArray([Int32(2)])),
        ]
        if let dropping { metadata[dropping] = nil }
        metadata.merge(overriding) { $1 }
        return metadata
    }

    @Test("a GGUF vocabulary merges by rank and cuts out control tokens")
    func ggufVocabulary() throws {
        let tokenizer = try BPETokenizer(ggufMetadata: Self.ggufMetadata())
        let hello = try #require(tokenizer.tokenId("hello")), space = try #require(tokenizer.tokenId(byteLevelCharacter(0x20)))
        #expect(tokenizer.encode("hello hello<|im_end|>") == [hello, space, hello, 2])
        #expect(tokenizer.encode("hell") == [try #require(tokenizer.tokenId("hell"))])
        #expect(tokenizer.bosTokenId == 1 && tokenizer.eosTokenIds == [0, 2] && tokenizer.vocabularySize == 263)
    }

    @Test("GGUF pre-tokenizer names map onto the supported kinds", arguments: [
        ("gpt-2", PreTokenizer.gpt2), ("smollm", .smollm), ("llama-bpe", .llama3), ("qwen2", .qwen2),
    ])
    func ggufPreTokenizerNames(name: String, kind: PreTokenizer) throws {
        let tokenizer = try BPETokenizer(ggufMetadata: Self.ggufMetadata(overriding: ["tokenizer.ggml.pre": .string(name)]))
        #expect(tokenizer.preTokenizer == kind)
        #expect(tokenizer.normalization == (kind == .qwen2 ? .nfc : .none))
        #expect(PreTokenizer(ggufName: name) == kind && PreTokenizer.supportedGGUFNames.contains(name))
        // Llama 3 looks whole words up first: "hello" is one token either way here.
        let hello = try #require(tokenizer.tokenId("hello"))
        #expect(tokenizer.encode("hello") == [hello])
    }

    @Test("construction errors name what is wrong", arguments: [
        ("tokenizer.ggml.merges", [String: GGUFValue](), "merges"),
        (nil, ["tokenizer.ggml.pre": GGUFValue.string("falcon")], "'falcon'"),
        (nil, ["tokenizer.ggml.model": GGUFValue.string("llama")], "'llama'"),
        (nil, ["tokenizer.ggml.merges": GGUFValue.strings(["h e", "he zz"])], "merge 1 ('he' 'zz'): 'zz' is not in the vocabulary"),
        (nil, ["tokenizer.ggml.merges": GGUFValue.strings(["h e", "hel"])], "tokenizer.ggml.merges[1]"),
        ("tokenizer.ggml.tokens", [:], "tokenizer.ggml.tokens"),
    ] as [(String?, [String: GGUFValue], String)])
    func ggufErrors(dropping: String?, overriding: [String: GGUFValue], expected: String) {
        #expect {
            _ = try BPETokenizer(ggufMetadata: Self.ggufMetadata(dropping: dropping, overriding: overriding))
        } throws: { error in
            guard case let .tokenizer(message) = error as? LanguageModelError else { return false }
            return message.contains(expected)
        }
    }

    @Test("tokenizer.json errors name the field or the unsupported part", arguments: TokenizerJSONMutation.all)
    func tokenizerJSONErrors(mutation: TokenizerJSONMutation) throws {
        let source = TokenizerFixtures.directory.appendingPathComponent("tiny_llama3/tokenizer.json")
        var root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as? [String: Any])
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        if mutation.name == "not JSON" {
            try Data("{\"model\": ".utf8).write(to: file)
        } else {
            mutation.apply(&root)
            try JSONSerialization.data(withJSONObject: root).write(to: file)
        }
        #expect {
            _ = try BPETokenizer(tokenizerJSON: file)
        } throws: { error in
            guard case let .tokenizer(message) = error as? LanguageModelError else { return false }
            return message.contains(mutation.expected)
        }
    }

    @Test("concurrent encodes through the shared word cache agree with serial ones")
    func concurrentEncoding() async throws {
        let tokenizer = try TokenizerFixtures.tiny("tiny_llama3")
        let cases = try TokenizerFixtures.golden("tiny_llama3").cases
        let results = await withTaskGroup(of: [[Int]].self) { group in
            for _ in 0..<4 { group.addTask { cases.map { tokenizer.encode($0.text) } } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 4)
        for result in results { #expect(result == cases.map(\.ids)) }
    }

    // MARK: speed

    @Test("encoding throughput on about 1 MB of text (figure printed)")
    func throughput() throws {
        let tokenizer: BPETokenizer
        if let embedded = TokenizerFixtures.smolLM2 { tokenizer = try embedded.get().tokenizer } else { tokenizer = try TokenizerFixtures.tiny("tiny_llama3") }
        // A megabyte of prose-like text from the golden corpus's words, numbers and punctuation.
        // (Without control characters, some of whose bytes SmolLM2's vocabulary lacks.)
        let words = try TokenizerFixtures.golden("tiny_llama3").cases.filter { !$0.name.hasPrefix("fuzz_") }
            .flatMap { $0.text.split(whereSeparator: \.isWhitespace).map(String.init) }
            .filter { $0.unicodeScalars.allSatisfy { $0.value >= 0x20 } }
        var generator = SeededGenerator(seed: 7)
        var text = ""
        while text.utf8.count < 1_000_000 {
            text += words[Int(generator.next() % UInt64(words.count))]
            switch generator.next() % 20 {
            case 0: text += ".\n"
            case 1: text += ", \(generator.next() % 100_000) "
            case 2: text += "  "
            default: text += " "
            }
        }
        let clock = ContinuousClock()
        var ids: [Int] = []
        let elapsed = clock.measure { ids = tokenizer.encode(text) }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let megabytes = Double(text.utf8.count) / 1e6
        print("BPETokenizer(\(tokenizer.preTokenizer)) encoded \(String(format: "%.2f", megabytes)) MB into \(ids.count) tokens in \(String(format: "%.3f", seconds)) s: \(String(format: "%.2f", megabytes / seconds)) MB/s")
        #expect(ids.count > 100_000)
        #expect(tokenizer.decode(ids) == text)
    }
}

/// A change that breaks a valid tokenizer.json, and what the error must say.
struct TokenizerJSONMutation: Sendable, CustomTestStringConvertible {
    var name: String
    var expected: String
    var apply: @Sendable (inout [String: Any]) -> Void
    var testDescription: String { name }

    static func model(_ change: @escaping @Sendable (inout [String: Any]) -> Void) -> @Sendable (inout [String: Any]) -> Void {
        { root in
            var model = root["model"] as! [String: Any]
            change(&model)
            root["model"] = model
        }
    }

    static let all: [TokenizerJSONMutation] = [
        .init(name: "not JSON", expected: "is not valid JSON") { _ in },
        .init(name: "no model", expected: "'model' is missing") { $0["model"] = nil },
        .init(name: "no vocab", expected: "'model.vocab' is missing", apply: model { $0["vocab"] = nil }),
        .init(name: "no merges", expected: "'model.merges' is missing", apply: model { $0["merges"] = nil }),
        .init(name: "bad merge", expected: "model.merges[1]", apply: model { m in
            var merges = m["merges"] as! [Any]
            merges[1] = 5
            m["merges"] = merges
        }),
        .init(name: "merge of unknown tokens", expected: "merge 0 ('zzz' 'qqq'): 'zzz' is not in the vocabulary", apply: model { m in
            m["merges"] = [["zzz", "qqq"]]
        }),
        .init(name: "Unigram", expected: "model.type 'Unigram'", apply: model { $0["type"] = "Unigram" }),
        .init(name: "added token without id", expected: "added_tokens[0].id") { root in
            var added = root["added_tokens"] as! [[String: Any]]
            added[0]["id"] = nil
            root["added_tokens"] = added
        },
        .init(name: "Metaspace pre-tokenizer", expected: "pre_tokenizer Metaspace is not supported") { root in
            root["pre_tokenizer"] = ["type": "Metaspace", "replacement": "_"]
        },
        .init(name: "unknown split regex", expected: #"Split(regex '\s+', Isolated) then ByteLevel"#) { root in
            root["pre_tokenizer"] = [
                "type": "Sequence",
                "pretokenizers": [
                    ["type": "Split", "pattern": ["Regex": #"\s+"#], "behavior": "Isolated", "invert": false],
                    ["type": "ByteLevel", "add_prefix_space": false, "use_regex": false],
                ],
            ]
        },
        .init(name: "WordPiece decoder", expected: "decoder 'WordPiece'") { $0["decoder"] = ["type": "WordPiece"] },
        .init(name: "lowercase normalizer", expected: "normalizer 'Lowercase'") { $0["normalizer"] = ["type": "Lowercase"] },
    ]
}
