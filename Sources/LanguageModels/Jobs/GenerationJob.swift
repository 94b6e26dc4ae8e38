public import Foundation

/// One line of a prompts file: a prompt string or a conversation, with an optional id.
public struct PromptRecord: Codable, Sendable, Equatable {
    public var id: String?
    public var prompt: String?
    public var system: String?
    public var messages: [ChatMessage]?
    /// "train", "validation" or "test" in the project's prompt sets (data/prompts); nil elsewhere.
    public var split: String?

    public init(id: String? = nil, prompt: String? = nil, system: String? = nil, messages: [ChatMessage]? = nil, split: String? = nil) {
        self.id = id
        self.prompt = prompt
        self.system = system
        self.messages = messages
        self.split = split
    }

    enum CodingKeys: String, CodingKey { case id, prompt, system, messages, split }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // Ids may be numbers or strings in the wild.
        if let s = try? c.decodeIfPresent(String.self, forKey: .id) { id = s } else if let n = try? c.decodeIfPresent(Int.self, forKey: .id) { id = String(n) } else if c.contains(.id), try !c.decodeNil(forKey: .id) {
            throw DecodingError.typeMismatch(String.self, .init(codingPath: [CodingKeys.id], debugDescription: "id must be a string or an integer"))
        }
        prompt = try c.decodeIfPresent(String.self, forKey: .prompt)
        system = try c.decodeIfPresent(String.self, forKey: .system)
        messages = try c.decodeIfPresent([ChatMessage].self, forKey: .messages)
        split = try c.decodeIfPresent(String.self, forKey: .split)
        if prompt == nil && messages == nil {
            throw DecodingError.keyNotFound(CodingKeys.prompt, .init(codingPath: [], debugDescription: "need 'prompt' or 'messages'"))
        }
        if let messages, messages.isEmpty {
            throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.messages], debugDescription: "must not be empty"))
        }
    }

    /// The conversation to answer.
    public var conversation: [ChatMessage] {
        if let messages { return messages }
        return (system.map { [ChatMessage.system($0)] } ?? []) + [.user(prompt ?? "")]
    }
}

/// One line of a generation output file.
public struct GenerationRecord: Codable, Sendable, Equatable {
    public var id: String
    public var messages: [ChatMessage]
    public var response: String
    public var finish_reason: FinishReason
    public var prompt_tokens: Int
    public var completion_tokens: Int
    public var model: String
}

/// `valuealign generate`: answers every prompt of a JSONL file into an output JSONL file, in
/// batches, appending as it goes. A rerun skips the ids already in the output (resume).
public struct GenerationJob {
    public struct Parameters: Sendable {
        public var promptsPath: String
        public var outputPath: String
        public var batchSize = 16
        public var generation = GenerationParameters()
        /// Only prompts whose `split` field equals this (e.g. "test"); nil = all.
        public var split: String?
        /// At most this many prompts (after the split filter), in file order; nil = all.
        public var limit: Int?
        public init(promptsPath: String, outputPath: String) {
            self.promptsPath = promptsPath
            self.outputPath = outputPath
        }
    }

    /// Progress after each batch.
    public struct Progress: Sendable {
        public var done: Int
        public var total: Int
        public var skipped: Int
        public var generatedTokens: Int
        public var elapsed: Double
    }

    public let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    /// Reads and checks the whole prompts file before any work; ids default to the line number.
    public func loadPrompts() throws -> [(id: String, record: PromptRecord)] {
        // A .csv of behaviours in HarmBench's layout (`BehaviorCSV`): one record per behaviour.
        let records = parameters.promptsPath.lowercased().hasSuffix(".csv")
            ? try BehaviorCSV.load(parameters.promptsPath)
            : try JSONLines.read(PromptRecord.self, from: parameters.promptsPath)
        var seen: [String: Int] = [:]
        var result: [(String, PromptRecord)] = []
        for (line, record) in records {
            let id = record.id ?? "line-\(line)"
            if let first = seen[id] {
                throw JSONLinesError(path: parameters.promptsPath, line: line, message: "duplicate id '\(id)' (first on line \(first))")
            }
            seen[id] = line
            if let split = parameters.split, record.split != split { continue }
            result.append((id, record))
        }
        if let limit = parameters.limit { result = Array(result.prefix(limit)) }
        guard !result.isEmpty else {
            throw JSONLinesError(path: parameters.promptsPath, line: 0, message: parameters.split.map { "no prompts with split '\($0)' in the file" } ?? "no prompts in the file")
        }
        return result
    }

    /// The conversations of several prompt files, each checked as `loadPrompts` checks one (with
    /// `split` and at most `limit` per file), ids prefixed by the file's name ("value_prompts:v012")
    /// so that they stay unique across files.
    public static func conversations(of paths: [String], split: String?, limit: Int? = nil) throws -> [(id: String, messages: [ChatMessage])] {
        var result: [(id: String, messages: [ChatMessage])] = []
        for path in paths {
            var p = Parameters(promptsPath: path, outputPath: "/dev/null")
            p.split = split
            p.limit = limit
            let file = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            for (id, record) in try GenerationJob(p).loadPrompts() { result.append(("\(file):\(id)", record.conversation)) }
        }
        return result
    }

    /// Runs the job; returns the number of records written. `progress` may return false to stop
    /// after the current batch (the output stays valid and resumable).
    @discardableResult
    public func run(backend: any ChatBackend, progress: (Progress) -> Bool = { _ in true }) async throws -> Int {
        try parameters.generation.validate()
        guard parameters.batchSize > 0 else { throw LanguageModelError.invalidParameter(field: "batchSize", message: "must be positive") }
        let prompts = try loadPrompts()
        var done = Set<String>()
        if FileManager.default.fileExists(atPath: parameters.outputPath) {
            for (_, r) in try JSONLines.readState(GenerationRecord.self, from: parameters.outputPath) { done.insert(r.id) }
        }
        let todo = prompts.filter { !done.contains($0.id) }
        let skipped = prompts.count - todo.count
        let start = Date()
        var written = 0, tokens = 0
        for batchStart in stride(from: 0, to: todo.count, by: parameters.batchSize) {
            let batch = Array(todo[batchStart..<min(batchStart + parameters.batchSize, todo.count)])
            let completions = try await backend.completeBatch(batch.map(\.record.conversation), parameters: parameters.generation)
            for (item, completion) in zip(batch, completions) {
                try JSONLines.append(GenerationRecord(
                    id: item.id, messages: item.record.conversation, response: completion.text, finish_reason: completion.finishReason,
                    prompt_tokens: completion.promptTokens, completion_tokens: completion.completionTokens, model: backend.modelName),
                    to: parameters.outputPath)
                written += 1
                tokens += completion.completionTokens
            }
            let p = Progress(done: skipped + written, total: prompts.count, skipped: skipped, generatedTokens: tokens, elapsed: Date().timeIntervalSince(start))
            if !progress(p) { break }
        }
        return written
    }
}
