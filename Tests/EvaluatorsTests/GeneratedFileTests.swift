import Foundation
import LanguageModels
import Testing
import ValueSpace

/// `valuealign evaluate` and `audit` read what `valuealign generate` writes: a real
/// `GenerationRecord`, encoded as the job writes it, reads back as a prompt/response record.
@Suite struct GeneratedFileTests {
    @Test func generationRecordsReadBackAsPairs() throws {
        let line = """
            {"id": "g1", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is honesty important?"}], "response": "Yes, it builds trust.", "finish_reason": "stop", "prompt_tokens": 20, "completion_tokens": 6, "model": "tiny"}
            """
        let record = try JSONDecoder().decode(GenerationRecord.self, from: Data(line.utf8))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("generated-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try JSONLines.append(record, to: path)
        let (records, report) = try PromptResponseFile.load(path)
        #expect(report.rows == 1)
        try #require(records.count == 1)
        #expect(records[0].id == "g1" && records[0].prompt == "Is honesty important?" && records[0].response == "Yes, it builds trust.")
    }
}
