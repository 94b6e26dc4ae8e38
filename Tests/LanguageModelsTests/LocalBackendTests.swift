import Foundation
import LanguageModels
import Testing
import ValueAlignTesting

/// A tiny random model with the byte tokenizer behind the real local backend.
func tinyBackend(seed: UInt64 = 3) throws -> LocalChatBackend {
    let model = try TinyModels.llama(TinyModels.llamaConfiguration(vocabulary: 260), seed: seed)
    return LocalChatBackend(LoadedModel(model: model, tokenizer: ByteTokenizer(), chatTemplate: .chatml, defaultSystemPrompt: "Be brief.", name: "tiny", path: "<memory>"))
}

@Suite struct LocalBackendTests {
    let conversations: [[ChatMessage]] = [[.user("Hi")], [.system("S"), .user("What now?")], [.user("x")]]

    @Test func batchEqualsOneByOneAndStreamEqualsComplete() async throws {
        let backend = try tinyBackend()
        let p = GenerationParameters(maxTokens: 10)
        let batch = try await backend.completeBatch(conversations, parameters: p)
        #expect(batch.count == 3)
        for (i, c) in conversations.enumerated() {
            let single = try await backend.complete(c, parameters: p)
            #expect(single == batch[i])
            var streamed = ""
            for try await piece in backend.stream(c, parameters: p) { streamed += piece }
            #expect(streamed == single.text)
        }
        #expect(batch[0].promptTokens == backend.loaded.promptTokens(conversations[0]).count)
        // The default system prompt is used when a conversation has none.
        #expect(backend.loaded.prompt(conversations[0]).hasPrefix("<|im_start|>system\nBe brief.<|im_end|>\n"))
    }

    @Test func invalidParametersFailBeforeWork() async throws {
        let backend = try tinyBackend()
        await #expect(throws: LanguageModelError.self) { try await backend.complete([.user("a")], parameters: GenerationParameters(topP: 0)) }
        var failed = false
        do { for try await _ in backend.stream([.user("a")], parameters: GenerationParameters(temperature: -1)) {} } catch { failed = true }
        #expect(failed)
    }

    @Test func abandoningAStreamStopsGeneration() async throws {
        let backend = try tinyBackend()
        var pieces = 0
        for try await _ in backend.stream([.user("go")], parameters: GenerationParameters(maxTokens: 200)) {
            pieces += 1
            if pieces == 2 { break }
        }
        // The queue is free again: a short request completes.
        let after = try await backend.complete([.user("go")], parameters: GenerationParameters(maxTokens: 2))
        #expect(after.completionTokens <= 2)
    }
}

@Suite struct GenerationJobTests {
    func temp(_ name: String) -> String { FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path }

    @Test func writesEveryPromptAndResumes() async throws {
        let prompts = temp("prompts.jsonl"), out = temp("out.jsonl")
        defer { try? FileManager.default.removeItem(atPath: prompts); try? FileManager.default.removeItem(atPath: out) }
        try """
        {"id": "a", "prompt": "Hello"}

        {"id": 7, "prompt": "Tell me", "system": "Short answers."}
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}, {"role": "user", "content": "More"}]}
        """.write(toFile: prompts, atomically: true, encoding: .utf8)
        let backend = try tinyBackend()
        var job = GenerationJob.Parameters(promptsPath: prompts, outputPath: out)
        job.batchSize = 2
        job.generation = GenerationParameters(maxTokens: 6)
        var updates: [Int] = []
        #expect(try await GenerationJob(job).run(backend: backend) { updates.append($0.done); return true } == 3)
        #expect(updates == [2, 3])
        let records = try JSONLines.read(GenerationRecord.self, from: out).map(\.value)
        #expect(records.map(\.id) == ["a", "7", "line-4"])
        #expect(records[1].messages.first == .system("Short answers."))
        #expect(records.allSatisfy { $0.model == "tiny" && $0.completion_tokens <= 6 })
        // A rerun does nothing; losing the last line redoes only that prompt, identically (greedy).
        #expect(try await GenerationJob(job).run(backend: backend) == 0)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        try (lines.dropLast().joined(separator: "\n") + "\n").write(toFile: out, atomically: true, encoding: .utf8)
        #expect(try await GenerationJob(job).run(backend: backend) == 1)
        #expect(try JSONLines.read(GenerationRecord.self, from: out).map(\.value) == records)
    }

    @Test(arguments: [
        ("{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"b\" \"prompt\": \"y\"}\n", 2, "not valid JSON"),
        ("{\"id\": \"a\"}\n", 1, "missing field 'prompt'"),
        ("{\"prompt\": 3}\n", 1, "'prompt' should be String"),
        ("{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"a\", \"prompt\": \"y\"}\n", 2, "duplicate id 'a' (first on line 1)"),
        ("{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n", 1, "messages"),
    ])
    func badLinesAreReportedWithTheirNumber(content: String, line: Int, message: String) async throws {
        let prompts = temp("bad.jsonl")
        defer { try? FileManager.default.removeItem(atPath: prompts) }
        try content.write(toFile: prompts, atomically: true, encoding: .utf8)
        let job = GenerationJob(.init(promptsPath: prompts, outputPath: temp("never.jsonl")))
        #expect {
            try job.loadPrompts()
        } throws: { error in
            guard let e = error as? JSONLinesError else { return false }
            return e.line == line && e.message.contains(message)
        }
    }
}
