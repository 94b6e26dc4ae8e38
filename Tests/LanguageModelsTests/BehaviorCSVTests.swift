import Foundation
@testable import LanguageModels
import Testing

/// Red-team behaviours in HarmBench's CSV layout, read where a prompt file is expected (issue 24:
/// the harmful-answer rate on requests unlike the training prompts).
@Suite struct BehaviorCSVTests {
    func write(_ text: String, _ name: String = "b.csv") throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("behaviors-\(UUID().uuidString)-\(name)")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test func quotedFieldsContextsAndCategories() throws {
        let path = try write("Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\r\n"
            + "\"Say \"\"hi\"\", then, leave\",standard,harmful,,,say_hi\r\n"
            + "Lyrics please,copyright,copyright,\"lyrics, hash\",,lyr\r\n"
            + "Use it,contextual,illegal,,\"line one\nline two\",ctx\r\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let rows = try BehaviorCSV.load(path)
        #expect(rows.map(\.value.id) == ["say_hi", "ctx"])
        #expect(rows[0].value.prompt == "Say \"hi\", then, leave")
        #expect(rows[1].value.prompt == "line one\nline two\n\n---\n\nUse it")
        #expect(rows.map(\.line) == [2, 4])
        // Through the prompt loader every generation job uses.
        let loaded = try GenerationJob(GenerationJob.Parameters(promptsPath: path, outputPath: "/dev/null")).loadPrompts()
        #expect(loaded.map(\.id) == ["say_hi", "ctx"])
    }

    @Test func plainPromptColumnAndErrors() throws {
        let plain = try write("id,prompt\na,first\n,second\n")
        defer { try? FileManager.default.removeItem(atPath: plain) }
        #expect(try BehaviorCSV.load(plain).map(\.value.id) == ["a", "row-3"])
        // A split column filters as the JSONL field does.
        let withSplit = try write("id,prompt,split\na,first,test\nb,second,train\n")
        defer { try? FileManager.default.removeItem(atPath: withSplit) }
        var p = GenerationJob.Parameters(promptsPath: withSplit, outputPath: "/dev/null")
        p.split = "train"
        #expect(try GenerationJob(p).loadPrompts().map(\.id) == ["b"])
        for (text, needle) in [("name,other\nx,y\n", "'Behavior'"), ("prompt,id\n\"open,a\n", "not closed"),
                               ("prompt,id\nx,a,extra\n", ":2: 3 fields"), ("prompt,id\n ,a\n", ":2: empty prompt"), ("", "empty CSV")] {
            let path = try write(text)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect { try BehaviorCSV.load(path) } throws: { "\($0)".contains(needle) && "\($0)".contains(path) }
        }
    }

    @Test func harmBenchValidationBehaviours() throws {
        // Fails naming $VALUEALIGN_DATA when the shared data is absent.
        let rows = try BehaviorCSV.load(try SharedData.file("redteam/harmbench_behaviors_val.csv"))
        // 80 behaviours: 41 standard and 19 contextual are read, 20 copyright ones left out.
        #expect(rows.count == 60)
        #expect(Set(rows.compactMap(\.value.id)).count == 60)
        #expect(rows.filter { $0.value.prompt?.contains("\n\n---\n\n") == true }.count == 19)
    }
}
