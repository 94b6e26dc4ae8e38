import Foundation
public import MLXEngine

/// A model ready to chat: weights, tokenizer and chat format, read from a GGUF file or a Hugging
/// Face folder. The model itself is not thread-safe; share a `LoadedModel` through
/// `LocalChatBackend` (or another single queue).
public final class LoadedModel: @unchecked Sendable {
    public let model: any CausalLanguageModel
    public let tokenizer: any Tokenizer
    public let chatTemplate: ChatTemplate
    /// The system prompt the model's own template adds when a conversation has none.
    public let defaultSystemPrompt: String?
    /// File or folder name, as shown to users.
    public let name: String
    public let path: String

    public init(model: any CausalLanguageModel, tokenizer: any Tokenizer, chatTemplate: ChatTemplate, defaultSystemPrompt: String?, name: String, path: String) {
        self.model = model
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.defaultSystemPrompt = defaultSystemPrompt
        self.name = name
        self.path = path
    }

    /// Loads a model. `chatTemplate` overrides the format detected from the model's metadata.
    public static func load(_ path: String, precision: WeightPrecision = .hybrid, chatTemplate: String? = nil) throws -> LoadedModel {
        let checkpoint = try Checkpoint.read(path)
        let tokenizer: BPETokenizer
        var jinja: String?
        switch checkpoint.format {
        case .gguf:
            tokenizer = try BPETokenizer(ggufMetadata: checkpoint.ggufMetadata)
            jinja = checkpoint.ggufMetadata["tokenizer.chat_template"]?.string
        case .huggingFace:
            tokenizer = try BPETokenizer(directory: URL(fileURLWithPath: path))
            jinja = Self.huggingFaceChatTemplate(folder: path)
        }
        if tokenizer.vocabularySize > checkpoint.configuration.vocabularySize {
            throw LanguageModelError.tokenizer("\(path): the tokenizer has \(tokenizer.vocabularySize) ids but the model only \(checkpoint.configuration.vocabularySize)")
        }
        let template: ChatTemplate
        if let name = chatTemplate {
            template = try ChatTemplate.named(name)
        } else if let detected = ChatTemplate.detect(fromJinja: jinja, tokenizer: tokenizer) {
            template = detected
        } else {
            throw LanguageModelError.unknownChatTemplate(
                "(none found in \(path))", supported: ChatTemplate.allCases.map(\.rawValue))
        }
        let model = try checkpoint.makeModel(precision: precision)
        return LoadedModel(
            model: model, tokenizer: tokenizer, chatTemplate: template,
            defaultSystemPrompt: jinja.flatMap { template == .chatml ? ChatTemplate.defaultSystemPrompt(fromJinja: $0) : nil },
            name: URL(fileURLWithPath: path).lastPathComponent, path: path)
    }

    /// This model with the PEFT adapters in `directories` stacked on it in order
    /// (`PEFTAdapter.stack`; the weights change in place) and named after them, as reports and the
    /// server show it ("model.gguf+runs/main/adapter").
    public func stacking(_ directories: [String], mergeLast: Bool = false) throws -> LoadedModel {
        guard !directories.isEmpty else { return self }
        try PEFTAdapter.stack(directories.map { URL(fileURLWithPath: $0) }, into: model, mergeLast: mergeLast)
        return LoadedModel(model: model, tokenizer: tokenizer, chatTemplate: chatTemplate, defaultSystemPrompt: defaultSystemPrompt,
                           name: ([name] + directories).joined(separator: "+"), path: path)
    }

    /// This model steered by the vectors in `specifications` (summed; `--steer FILE[:MULTIPLIER]`),
    /// named after them as reports show it ("model.gguf+steer(benevolence.safetensors:4)"). The
    /// model itself changes: every later forward pass adds the vectors. A vector made for another
    /// base model, of another width or at a layer the model cannot steer is an error naming its
    /// file.
    public func steered(by specifications: [SteeringSpecification]) throws -> LoadedModel {
        guard let steering = try SteeringSpecification.steering(specifications, for: model.configuration) else { return self }
        model.steering = steering
        let label = specifications.map { s in URL(fileURLWithPath: s.path).lastPathComponent + (s.multiplier.map { ":\($0)" } ?? "") }
        return LoadedModel(model: model, tokenizer: tokenizer, chatTemplate: chatTemplate, defaultSystemPrompt: defaultSystemPrompt,
                           name: name + "+steer(" + label.joined(separator: ",") + ")", path: path)
    }

    /// `chat_template` of tokenizer_config.json: a string, or a list of named templates ("default").
    static func huggingFaceChatTemplate(folder: String) -> String? {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: folder).appendingPathComponent("tokenizer_config.json")),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        if let s = object["chat_template"] as? String { return s }
        if let list = object["chat_template"] as? [[String: Any]] {
            return (list.first { $0["name"] as? String == "default" } ?? list.first)?["template"] as? String
        }
        return nil
    }

    /// The prompt text of a conversation, ending with the assistant's turn header.
    public func prompt(_ messages: [ChatMessage]) -> String {
        chatTemplate.render(messages, addGenerationPrompt: true, defaultSystemPrompt: defaultSystemPrompt)
    }

    /// The prompt's token ids.
    public func promptTokens(_ messages: [ChatMessage]) -> [Int] {
        tokenizer.encode(prompt(messages), addSpecialTokens: false, parseSpecialTokens: true)
    }

    /// A generator that also stops at the template's end-of-turn tokens.
    public func makeGenerator() -> Generator {
        Generator(model: model, tokenizer: tokenizer, extraStopTokenIds: chatTemplate.stopTokenIds(in: tokenizer))
    }
}
