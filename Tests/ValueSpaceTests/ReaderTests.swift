import Foundation
import ValueAlignCore
import Testing
import ValueSpace

@Suite struct ReaderTests {
    @Test func promptResponseShapes() throws {
        // The `valuealign generate` shape (EvaluatorsTests' GeneratedFileTests reads a real
        // GenerationRecord back, so a change of that type shows up there).
        let generated = """
            {"id": "g1", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Earlier question"}, {"role": "assistant", "content": "Earlier answer"}, {"role": "user", "content": "Is honesty important?"}], "response": "Yes, it builds trust.", "finish_reason": "stop", "prompt_tokens": 20, "completion_tokens": 6, "model": "tiny"}
            """
        let path = try temporaryFile([
            #"{"prompt": "Plain prompt", "response": "Plain answer"}"#,
            generated,
            #"{"prompt": "Scored", "answer": "Scored answer", "id": 7}"#,
            "",
            #"{"prompt": "  ", "response": "x"}"#,
            #"{"prompt": "p", "response": " \n"}"#,
            #"{"messages": [{"role": "system", "content": "s"}], "response": "r"}"#,
        ])
        let (records, report) = try PromptResponseFile.load(path)
        #expect(report.rows == 6)
        try #require(records.count == 3)
        #expect(records[0].pair == ValuePair(prompt: "Plain prompt", response: "Plain answer"))
        #expect(records[1].id == "g1" && records[1].prompt == "Is honesty important?" && records[1].line == 2)
        #expect(records[2].id == "7" && records[2].response == "Scored answer")
        typealias R = PromptResponseFile.DropReason
        #expect(report.droppedRows == [R.emptyPrompt: 1, R.emptyResponse: 1, R.noUserMessage: 1])
        #expect(report.kept + report.droppedRowCount == report.rows)
    }

    @Test(arguments: [
        (#"{"prompt": "p"}"#, "response"),
        (#"{"response": "r"}"#, "prompt"),
        (#"{"prompt": "p", "response": 3}"#, "response"),
        (#"{"prompt": "p", "response": "r""#, "JSON"),
    ])
    func promptResponseErrors(line: String, mentions: String) throws {
        let path = try temporaryFile([#"{"prompt": "ok", "response": "ok"}"#, line])
        #expect { try PromptResponseFile.load(path) } throws: { error in
            guard let e = error as? JSONLinesError else { return false }
            return e.line == 2 && e.message.contains(mentions)
        }
    }

    @Test func hhTurns() throws {
        let text = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a fact.\nPlease.\n\nAssistant: Water boils at 100 C at sea level."
        let turns = try #require(HHDialogue.turns(text))
        #expect(turns.map(\.role) == [.user, .assistant, .user, .assistant])
        #expect(turns[2].content == "Tell me a fact.\nPlease.")
        #expect(HHDialogue.lastExchange(text) == ValuePair(prompt: "Tell me a fact.\nPlease.", response: "Water boils at 100 C at sea level."))
        #expect(HHDialogue.turns("Human: no leading blank line\n\nAssistant: fine")?.count == 2)
        #expect(HHDialogue.turns("Preface\n\nHuman: q\n\nAssistant: a") == nil)
        #expect(HHDialogue.turns("no markers") == nil)
        #expect(HHDialogue.lastExchange("\n\nHuman: only a question") == nil)
        #expect(HHDialogue.turns("\n\nHuman: q\n\nAssistant:")?.last == .assistant(""))
    }

    static func hhLine(_ chosen: String, _ rejected: String) -> String {
        "{\"chosen\": \(jsonString(chosen)), \"rejected\": \(jsonString(rejected))}"
    }

    @Test func preferencePairs() throws {
        let ctx = "\n\nHuman: first\n\nAssistant: reply\n\nHuman: second"
        let path = try temporaryFile([
            Self.hhLine(ctx + "\n\nAssistant: good answer", ctx + "\n\nAssistant: bad answer"),
            Self.hhLine(ctx + "\n\nAssistant: same", ctx + "\n\nAssistant: same"),
            Self.hhLine(ctx + "\n\nAssistant: a", "\n\nHuman: other\n\nAssistant: b"),
            Self.hhLine(ctx + "\n\nAssistant:  ", ctx + "\n\nAssistant: b"),
            Self.hhLine(ctx, ctx + "\n\nAssistant: b"),
            Self.hhLine("garbage", ctx + "\n\nAssistant: b"),
        ])
        let (pairs, report) = try PreferenceDataset.load(path)
        try #require(pairs.count == 1)
        #expect(pairs[0].context.map(\.role) == [.user, .assistant, .user])
        #expect(pairs[0].prompt == "second" && pairs[0].chosen == "good answer" && pairs[0].rejected == "bad answer")
        typealias R = PreferenceDataset.DropReason
        #expect(report.droppedRows == [R.identicalAnswers: 1, R.differentContext: 1, R.emptyAnswer: 1, R.noFinalAnswer: 1, R.notADialogue: 1])

        let broken = try temporaryFile([Self.hhLine(ctx + "\n\nAssistant: a", ctx + "\n\nAssistant: b"), #"{"chosen": "x"}"#])
        #expect { try PreferenceDataset.load(broken) } throws: { ($0 as? JSONLinesError)?.line == 2 }
    }

    @Test(arguments: ["preferences/harmless.jsonl", "preferences/helpful.jsonl"])
    func realPreferenceFiles(relative: String) throws {
        let path = try sharedFile(relative)
        let (pairs, report) = try PreferenceDataset.load(path)
        print("\(relative):\n\(report.summary)")
        #expect(report.rows > 2000)
        #expect(report.kept == pairs.count && report.kept + report.droppedRowCount == report.rows)
        #expect(Double(report.kept) > 0.98 * Double(report.rows))
        #expect(pairs.allSatisfy { $0.context.last?.role == .user && $0.chosen != $0.rejected })
    }
}
