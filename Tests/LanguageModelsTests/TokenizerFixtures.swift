import Foundation
import LanguageModels
import MLXEngine

// Shared by the tokenizer and chat-template tests: the committed golden files written by
// scripts/fixtures/tokenizer_golden.py, and the embedded SmolLM2 model's tokenizer.

enum TokenizerFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent("tokenizer")

    /// The tiny tokenizers trained by the fixture script, by folder name.
    static let tinyVariants = ["tiny_llama3", "tiny_qwen2", "tiny_gpt2"]

    static func golden(_ name: String) throws -> Golden {
        let data = try Data(contentsOf: directory.appendingPathComponent("\(name)_golden.json"))
        return try JSONDecoder().decode(Golden.self, from: data)
    }

    static func tiny(_ name: String) throws -> BPETokenizer {
        try BPETokenizer(directory: directory.appendingPathComponent(name))
    }

    /// The embedded model file (`VALUEALIGN_MODEL`, or `.deps/` as `make deps` installs it).
    static let modelPath: String? = ModelLocator.embeddedModelPath()

    /// The embedded model's tokenizer and chat template, loaded once for all tests.
    static let smolLM2: Result<EmbeddedTokenizer, any Error>? = modelPath.map { path in
        Result { () throws -> EmbeddedTokenizer in
            let metadata = try ArrayIO.loadGGUF(path).metadata
            return EmbeddedTokenizer(
                tokenizer: try BPETokenizer(ggufMetadata: metadata), chatTemplate: metadata["tokenizer.chat_template"]?.string,
                metadata: metadata)
        }
    }
}

struct EmbeddedTokenizer: Sendable {
    var tokenizer: BPETokenizer
    var chatTemplate: String?
    var metadata: [String: GGUFValue]
}

/// One golden file.
struct Golden: Decodable {
    struct Case: Decodable {
        var name: String
        var text: String
        var ids: [Int]
        var ids_no_special: [Int]
        var ids_with_special: [Int]?
        /// Pre-tokenizer pieces in byte-level spelling.
        var pieces: [String]
        var decoded: String
    }

    struct DecodeCase: Decodable {
        var name: String
        var ids: [Int]
        var text: String
        var text_skip_special: String
    }

    struct Chat: Decodable {
        struct Message: Decodable {
            var role: String
            var content: String
        }

        var messages: [Message]
        var add_generation_prompt: Bool
        var text: String

        var chatMessages: [ChatMessage] {
            messages.map { ChatMessage(role: ChatMessage.Role(rawValue: $0.role)!, content: $0.content) }
        }
    }

    var vocabulary_size: Int
    var cases: [Case]
    var decode_cases: [DecodeCase]?
    var chat: [Chat]?
}

/// The character GPT-2's byte-level alphabet spells `byte` with: printable Latin-1 bytes spell
/// themselves, the other 68 move, in order, to U+0100 and up.
func byteLevelCharacter(_ byte: UInt8) -> String {
    func printable(_ b: Int) -> Bool { (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) }
    let b = Int(byte)
    if printable(b) { return String(Unicode.Scalar(byte)) }
    let moved = (0..<b).filter { !printable($0) }.count
    return String(Unicode.Scalar(UInt32(256 + moved))!)
}

/// The byte-level spelling of a string's UTF-8 (how the golden files write pieces).
func byteLevelSpelling(_ text: String) -> String {
    text.utf8.map(byteLevelCharacter).joined()
}
