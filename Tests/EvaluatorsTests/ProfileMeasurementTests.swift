import Evaluators
import Foundation
import LanguageModels
import Testing
import ValueAlignTesting
import ValueSpace

@Suite struct ProfileMeasurementTests {
    @Test func generatesScoresAggregatesAndWritesTheReport() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("measure-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let prompts = dir + "-prompts.jsonl"
        defer { try? FileManager.default.removeItem(atPath: prompts) }
        try """
        {"id": "a", "prompt": "one", "split": "heldout"}
        {"id": "b", "prompt": "two", "split": "train"}
        {"id": "c", "prompt": "three", "split": "heldout"}
        """.write(toFile: prompts, atomically: true, encoding: .utf8)
        let model = try TinyModels.llama(TinyModels.llamaConfiguration(vocabulary: 260), seed: 3)
        let backend = LocalChatBackend(LoadedModel(model: model, tokenizer: ByteTokenizer(), chatTemplate: .chatml, defaultSystemPrompt: nil, name: "tiny", path: "<memory>"))
        // A judge that supports security and opposes power for every answer.
        let answer = "{\"self_direction\": 0, \"stimulation\": 0, \"hedonism\": 0, \"achievement\": 0, \"power\": -1, \"security\": 1, \"tradition\": 0, \"conformity\": 0, \"benevolence\": 0, \"universalism\": 0}"
        let judge = LLMJudgeEvaluator(backend: ScriptedBackend([answer, answer]))
        var parameters = ProfileMeasurement.Parameters(promptsPath: prompts, outputDirectory: dir, target: try ProfileStore.defaultTarget())
        parameters.generation = GenerationParameters(maxTokens: 4)
        parameters.split = "heldout"
        parameters.bootstrap = BootstrapParameters(resamples: 200)
        let summary = try await ProfileMeasurement(parameters).run(backend: backend, evaluator: judge)
        #expect(summary.answers == 2)
        #expect(summary.profile.vector[.security] == 1 && summary.profile.vector[.power] == -1)
        // d = |1-1|*1 for security (masked in) + 0 for the others (|v| <= 0.3 or t = 0).
        #expect(summary.distance.value == 0)
        for file in ["responses.jsonl", "assessments.jsonl", "profile.json", "summary.json", "report.html", "report.md"] {
            #expect(FileManager.default.fileExists(atPath: "\(dir)/\(file)"), "\(file)")
        }
        let html = try String(contentsOfFile: dir + "/report.html", encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("tiny"))
        let reloaded = try ValueProfile.load(contentsOf: dir + "/profile.json")
        #expect(reloaded.sampleCount == 2)
    }
}
