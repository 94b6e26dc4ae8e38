import Foundation
import LanguageModels
import Testing

/// Chat templates against renderings of the real Jinja templates (golden files).
@Suite("ChatTemplate")
struct ChatTemplateTests {
    @Test("names resolve, case-insensitively", arguments: ChatTemplate.allCases)
    func named(template: ChatTemplate) throws {
        #expect(try ChatTemplate.named(template.rawValue) == template)
        #expect(try ChatTemplate.named(template.rawValue.uppercased()) == template)
    }

    @Test("an unknown name is an error listing the supported ones")
    func unknownName() {
        #expect(throws: LanguageModelError.unknownChatTemplate("vicuna", supported: ["chatml", "llama3"])) {
            try ChatTemplate.named("vicuna")
        }
        #expect(LanguageModelError.unknownChatTemplate("vicuna", supported: ["chatml", "llama3"]).description.contains("chatml, llama3"))
    }

    @Test("ChatML renders as SmolLM2's own Jinja template does (jinja2 golden)")
    func chatMLMatchesJinja() throws {
        let chats = try #require(try TokenizerFixtures.golden("smollm2").chat)
        #expect(chats.count == 6)
        for chat in chats {
            #expect(chat.chatMessages.first?.role == .system, "golden conversations carry their own system message")
            let text = ChatTemplate.chatml.render(chat.chatMessages, addGenerationPrompt: chat.add_generation_prompt, defaultSystemPrompt: "unused")
            #expect(text == chat.text)
        }
    }

    @Test("Llama 3 renders as a Llama 3 style Jinja template does (jinja2 golden), contents trimmed")
    func llama3MatchesJinja() throws {
        let chats = try #require(try TokenizerFixtures.golden("tiny_llama3").chat)
        #expect(chats.count == 6)
        for chat in chats {
            #expect(ChatTemplate.llama3.render(chat.chatMessages, addGenerationPrompt: chat.add_generation_prompt) == chat.text)
        }
        let text = ChatTemplate.llama3.render([.user(" hi\n")], addGenerationPrompt: true)
        #expect(text == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    @Test("a default system prompt goes first only when the conversation has none", arguments: ChatTemplate.allCases)
    func defaultSystemPrompt(template: ChatTemplate) {
        let withDefault = template.render([.user("Hello")], addGenerationPrompt: false, defaultSystemPrompt: "Be brief.")
        let explicit = template.render([.system("Be brief."), .user("Hello")], addGenerationPrompt: false)
        #expect(withDefault == explicit)
        let own = template.render([.system("Own."), .user("Hello")], addGenerationPrompt: false, defaultSystemPrompt: "Be brief.")
        #expect(!own.contains("Be brief.") && own.contains("Own."))
        #expect(template.render([], addGenerationPrompt: false, defaultSystemPrompt: "Be brief.").isEmpty == (template == .chatml))
    }

    @Test("SmolLM2's default system prompt is read from its GGUF template and rendered first",
          .enabled(if: TokenizerFixtures.modelPath != nil, "set VALUEALIGN_MODEL to the SmolLM2 GGUF file"))
    func smolLM2DefaultSystemPrompt() throws {
        let model = try #require(TokenizerFixtures.smolLM2).get()
        let jinja = try #require(model.chatTemplate)
        #expect(ChatTemplate.detect(fromJinja: jinja, tokenizer: model.tokenizer) == .chatml)
        let prompt = try #require(ChatTemplate.defaultSystemPrompt(fromJinja: jinja))
        #expect(!prompt.isEmpty && jinja.contains(prompt) && !prompt.contains("'") && !prompt.contains("<|"))
        let text = ChatTemplate.chatml.render([.user("Hi")], addGenerationPrompt: true, defaultSystemPrompt: prompt)
        #expect(text.hasPrefix("<|im_start|>system\n\(prompt)<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"))
        #expect(text.hasSuffix("<|im_start|>assistant\n"))
        // The rendered prompt tokenizes with its markers as single special tokens.
        let ids = model.tokenizer.encode(text, addSpecialTokens: false, parseSpecialTokens: true)
        let imStart = try #require(model.tokenizer.tokenId("<|im_start|>"))
        #expect(ids.first == imStart && ids.filter { $0 == imStart }.count == 3)
        #expect(ChatTemplate.chatml.stopTokenIds(in: model.tokenizer).isSubset(of: model.tokenizer.eosTokenIds))
    }

    @Test("default system prompts are read only from string literals")
    func defaultSystemPromptExtraction() {
        let escaped = #"{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou help; it\'s fine.<|im_end|>\n' }}{% endif %}"#
        #expect(ChatTemplate.defaultSystemPrompt(fromJinja: escaped) == "You help; it's fine.")
        let real = "{{ '<|im_start|>system\nLine one\\nline two<|im_end|>\n' }}"
        #expect(ChatTemplate.defaultSystemPrompt(fromJinja: real) == "Line one\nline two")
        let expression = #"{{ '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"#
        #expect(ChatTemplate.defaultSystemPrompt(fromJinja: expression) == nil)
        #expect(ChatTemplate.defaultSystemPrompt(fromJinja: "{{ bos_token }}") == nil)
    }

    @Test("detection reads the Jinja template, then the vocabulary")
    func detection() throws {
        let llama = try TokenizerFixtures.tiny("tiny_llama3")
        let config = TokenizerFixtures.directory.appendingPathComponent("tiny_llama3/tokenizer_config.json")
        let jinja = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any])["chat_template"] as? String
        #expect(ChatTemplate.detect(fromJinja: jinja, tokenizer: llama) == .llama3)
        #expect(ChatTemplate.detect(fromJinja: nil, tokenizer: llama) == .llama3)
        #expect(ChatTemplate.detect(fromJinja: "{{ messages }}", tokenizer: llama) == .llama3)
        #expect(ChatTemplate.detect(fromJinja: "<|im_start|>{{ m }}", tokenizer: llama) == .chatml)
        let qwen = try TokenizerFixtures.tiny("tiny_qwen2")  // same special tokens as tiny_llama3
        let bare = try BPETokenizer(tokens: (0...255).map { byteLevelCharacter(UInt8($0)) }, merges: [], preTokenizer: .gpt2)
        #expect(ChatTemplate.detect(fromJinja: nil, tokenizer: bare) == nil)
        #expect(ChatTemplate.detect(fromJinja: nil, tokenizer: qwen) == .llama3)
        #expect(ChatTemplate.llama3.stopTokenIds(in: llama) == [llama.tokenId("<|eot_id|>")!, llama.tokenId("<|end_of_text|>")!])
    }
}
