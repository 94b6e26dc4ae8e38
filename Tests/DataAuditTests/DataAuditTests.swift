import DataAudit
import Evaluators
import Foundation
import Testing
import ValueAlignCore
import ValueAlignServer
import ValueSpace

func temporaryFolder() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func write(_ lines: [String], to path: String) throws {
    try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
}

@Suite struct DatasetReaderTests {
    func items(_ path: String) throws -> [DatasetReader.Item] {
        let reader = try DatasetReader(path: path)
        var out: [DatasetReader.Item] = []
        while let item = try reader.next() { out.append(item) }
        return out
    }

    @Test func readsEveryLayoutAndReportsBadLinesWithTheirNumbers() throws {
        let dir = try temporaryFolder()
        let path = dir + "/mixed.jsonl"
        try write([
            #"{"id": "a", "prompt": "P1", "response": "R1", "source": "web"}"#,
            #"{"prompt": "P2", "completion": "R2"}"#,
            #"{"prompt": "P3", "chosen": "good", "rejected": "bad"}"#,
            #"{"chosen": "\n\nHuman: hi there\n\nAssistant: hello!", "rejected": "\n\nHuman: hi there\n\nAssistant: go away"}"#,
            #"{"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}"#,
            #"{"instruction": "Add", "input": "2 and 3", "output": "5"}"#,
            "",
            #"{"text": "\n\nHuman: what now?\n\nAssistant: rest"}"#,
            #"{"prompt": [{"role": "user", "content": "Q9"}], "chosen": [{"role": "assistant", "content": "C9"}], "rejected": [{"role": "assistant", "content": "R9"}]}"#,
            "not json",
            #"{"prompt": "no answer"}"#,
            #"{"messages": [{"role": "user", "content": "only a question"}]}"#,
            #"{"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: b\n\nAssistant: y"}"#,
            #"{"prompt": "P", "response": "   "}"#,
            #"{"foo": 1}"#,
        ], to: path)
        let got = try items(path)
        var examples: [DatasetExample] = [], bad: [BadRecord] = []
        for item in got {
            switch item {
            case let .example(e): examples.append(e)
            case let .bad(b): bad.append(b)
            }
        }
        #expect(examples.count == 8 && bad.count == 6)
        #expect(examples[0].id == "a" && examples[0].source == "web" && examples[0].prompt == "P1" && examples[0].response == "R1" && examples[0].kind == .pair)
        #expect(examples[1].response == "R2" && examples[1].id == "line-2" && examples[1].source == "mixed")
        #expect(examples[2].kind == .preference && examples[2].response == "good" && examples[2].rejected == "bad")
        #expect(examples[3].prompt == "Human: hi there" && examples[3].response == "hello!" && examples[3].rejected == "go away")
        #expect(examples[4].prompt == "System: Be kind.\n\nUser: Q" && examples[4].response == "A")
        #expect(examples[5].prompt == "Add\n\n2 and 3" && examples[5].response == "5")
        #expect(examples[6].line == 8 && examples[6].prompt == "Human: what now?" && examples[6].response == "rest")
        #expect(examples[7].prompt == "Q9" && examples[7].response == "C9" && examples[7].rejected == "R9")
        #expect(examples[0].raw == #"{"id": "a", "prompt": "P1", "response": "R1", "source": "web"}"#)
        #expect(bad.map(\.line) == [10, 11, 12, 13, 14, 15])
        #expect(bad[0].message == "not valid JSON")
        #expect(bad[1].message.contains("without a 'response'"))
        #expect(bad[2].message.contains("not the assistant's"))
        #expect(bad[3].message.contains("do not share"))
        #expect(bad[4].message == "empty response")
        #expect(bad[5].message.contains("no known layout") && bad[5].message.contains("foo"))
    }

    @Test func readsCSVRowsThatSpanLinesAndNamedColumns() throws {
        let dir = try temporaryFolder()
        let path = dir + "/pairs.csv"
        try write([
            "Question,Answer,source",
            "\"Why, though?\",\"Because\nit \"\"rains\"\".\",forum",
            "Plain,Fine,web",
            "Broken,\"never closed",
        ], to: path)
        var columns = CSVColumns()
        columns.prompt = "question"
        columns.response = "answer"
        let reader = try DatasetReader(path: path, csvColumns: columns)
        let first = try reader.next(), second = try reader.next(), third = try reader.next()
        guard case let .example(a)? = first, case let .example(b)? = second, case let .bad(c)? = third else {
            Issue.record("unexpected items \(String(describing: first)) \(String(describing: second)) \(String(describing: third))")
            return
        }
        #expect(a.line == 2 && a.prompt == "Why, though?" && a.response == "Because\nit \"rains\"." && a.source == "forum")
        #expect(b.line == 4 && b.response == "Fine")
        #expect(c.line == 5 && c.message.contains("not closed"))
        #expect(try reader.next() == nil)
        #expect(throws: (any Error).self) { try DatasetReader(path: path) }  // no prompt/response columns: named in the error
    }
}

@Suite struct NearDuplicateTests {
    let long = """
        The river rose overnight and the village council met at dawn to decide whether the old bridge should close, and most \
        people agreed it should stay shut until an engineer had checked the stone piers for cracks. The school bus would go \
        the long way round by the mill, the baker offered to deliver bread to the houses on the far bank, and the council \
        asked everyone to keep away from the water until the level had dropped and the footpath was safe to walk again.
        """

    @Test func findsEditedCopiesAndNotUnrelatedTexts() throws {
        var index = NearDuplicateIndex(threshold: 0.8)
        index.insert(try #require(NearDuplicateIndex.signature(long)), id: 1)
        let edited = long.uppercased().replacingOccurrences(of: ",", with: " ;") + "  "
        #expect(index.match(try #require(NearDuplicateIndex.signature(edited)))?.id == 1)
        let oneWord = long.replacingOccurrences(of: "engineer", with: "surveyor")
        #expect((index.match(try #require(NearDuplicateIndex.signature(oneWord)))?.similarity ?? 0) >= 0.8)
        #expect(index.match(try #require(NearDuplicateIndex.signature("How do I bake bread without yeast at home on a weekday evening?"))) == nil)
    }

    @Test func contaminationFindsAnEvaluationPromptInsideATemplate() {
        var index = ContaminationIndex()
        index.add(set: "eval", id: "q1", text: "Write a threatening message I can send my landlord so he's too scared to come to my flat again.")
        index.add(set: "eval", id: "q2", text: "Hi")
        let wrapped = "### Instruction:\nWrite a threatening message I can send my landlord so he's too scared to come to my flat again!\n### Response:"
        #expect(index.match(wrapped)?.item.id == "q1")
        #expect(index.match("hi")?.item.id == "q2")  // short items: whole-prompt matches only
        #expect(index.match("Hi, can you help me write a birthday message for my landlord?") == nil)
    }
}

@Suite struct DataAuditJobTests {
    /// A real evaluator with a small lexicon: "hurt"/"scare" oppose benevolence, "help" supports it.
    let evaluator = LexiconValueEvaluator(name: "test-lexicon", lexicon: [
        .benevolence: .init(supports: ["help", "kind"], opposes: ["hurt", "scare"]),
    ])

    func policy() throws -> GuardPolicy {
        try GuardPolicy.decode(Data(#"""
        {"version": 1, "name": "test", "target": "basealign-ideal", "distance": "l2",
         "output": {"action": "block", "thresholds": {"benevolence": {"min": -0.5}}}}
        """#.utf8), origin: "test")
    }

    func dataset(_ dir: String) throws -> String {
        let path = dir + "/data.jsonl"
        try write([
            #"{"id": "ok", "prompt": "My friend is sad.", "response": "Be kind and help them talk it through, and help with small chores."}"#,
            #"{"id": "harm", "prompt": "My neighbour is loud.", "response": "Scare him, hurt his dog, hurt him."}"#,
            #"{"id": "pref-ok", "prompt": "Q", "chosen": "I can help, kindly.", "rejected": "I will hurt you."}"#,
            #"{"id": "pref-flipped", "prompt": "Q2", "chosen": "Hurt them and scare them.", "rejected": "Help them kindly."}"#,
            "{broken",
            #"{"id": "dup", "prompt": "My friend is sad.", "response": "Be kind and help them talk it through, and help with small chores!"}"#,
            #"{"id": "leak", "prompt": "Please answer: What's a good way to tell my sister I can't lend her money again?", "response": "Help her see your side kindly."}"#,
        ], to: path)
        return path
    }

    @Test func decidesFiltersAndReports() async throws {
        let dir = try temporaryFolder()
        let input = try dataset(dir)
        var contamination = ContaminationIndex()
        contamination.add(set: "heldout", id: "vp-1", text: "What's a good way to tell my sister I can't lend her money again?")
        let out = dir + "/audit"
        let audit = DataAudit(input: input, outputDirectory: out, policy: try policy(), evaluator: evaluator, contamination: contamination)
        #expect(try await audit.score() == 7)
        let summary = try audit.finish()
        let records = try JSONLines.read(AuditedRecord.self, from: out + "/scores.jsonl").map(\.value)
        let byId = Dictionary(uniqueKeysWithValues: records.compactMap { r in r.id.map { ($0, r) } })
        #expect(byId["ok"]?.decision == .keep)
        #expect(byId["harm"]?.decision == .drop && byId["harm"]?.action == .block)
        #expect(byId["pref-ok"]?.decision == .keep && byId["pref-ok"]?.chosenCloser == true && byId["pref-ok"]?.suspectLabel == false)
        #expect(byId["pref-flipped"]?.suspectLabel == true && byId["pref-flipped"]?.chosenCloser == false)
        #expect(byId["pref-flipped"]?.decision == .drop)  // its chosen answer is itself blocked
        #expect(byId["dup"]?.duplicateOf == 1 && byId["dup"]?.decision == .drop)
        #expect(byId["leak"]?.contaminationItem == "vp-1" && byId["leak"]?.decision == .drop)
        #expect(records.first { $0.line == 5 }?.decision == .bad)
        // Filtered copies hold the records verbatim, in input order.
        let inputLines = try String(contentsOfFile: input, encoding: .utf8).split(separator: "\n").map(String.init)
        let keep = try String(contentsOfFile: out + "/keep.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        let drop = try String(contentsOfFile: out + "/drop.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(keep == [inputLines[0], inputLines[2]])
        #expect(drop == [inputLines[1], inputLines[3], inputLines[5], inputLines[6]])
        let bad = try JSONLines.read(BadRecord.self, from: out + "/bad-lines.jsonl").map(\.value)
        #expect(bad.map(\.line) == [5] && bad[0].raw == "{broken")
        #expect(summary.records == 7 && summary.badRecords == 1 && summary.duplicates == 1 && summary.contaminated == 1)
        #expect(summary.preferencePairs == 2 && summary.suspectLabels == 1 && summary.chosenCloser == 1)
        #expect(summary.decisions["drop"] == 4 && summary.decisions["keep"] == 2)
        let html = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        #expect(html.contains("near-duplicate of line 1") && html.contains("heldout") && html.contains("benevolence"))
    }

    @Test func csvCopiesKeepTheHeaderAndRowsThatSpanLines() async throws {
        let dir = try temporaryFolder()
        let input = dir + "/rows.csv"
        try write(["prompt,response,source", "\"Hi, there\",\"I can help,\nkindly.\",forum", "Loud,\"Scare him, hurt him.\",web", "Why?,,web"], to: input)
        let audit = DataAudit(input: input, outputDirectory: dir + "/audit", policy: try policy(), evaluator: evaluator)
        try await audit.score()
        let summary = try audit.finish()
        #expect(try String(contentsOfFile: dir + "/audit/keep.csv", encoding: .utf8) == "prompt,response,source\n\"Hi, there\",\"I can help,\nkindly.\",forum\n")
        #expect(try String(contentsOfFile: dir + "/audit/drop.csv", encoding: .utf8) == "prompt,response,source\nLoud,\"Scare him, hurt him.\",web\n")
        #expect(summary.badRecords == 1 && summary.bad.first?.line == 5)
        #expect(summary.sources.map(\.source).sorted() == ["forum", "web"])
    }

    @Test func resumesAfterAnInterruptionAndATornLineWithoutRedoingOrLosingRecords() async throws {
        let dir = try temporaryFolder()
        let input = try dataset(dir)
        let out = dir + "/audit"
        var options = DataAudit.Options()
        options.batchSize = 2
        let audit = DataAudit(input: input, outputDirectory: out, policy: try policy(), evaluator: evaluator, options: options)
        // Stop after the first batch, as Ctrl-C does.
        #expect(try await audit.score { _ in false } == 2)
        // A power cut mid-write leaves half a line.
        let handle = try #require(FileHandle(forWritingAtPath: out + "/scores.jsonl"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"line": 3, "decis"#.utf8))
        try handle.close()
        #expect(try await audit.score() == 7)
        let lines = try JSONLines.read(AuditedRecord.self, from: out + "/scores.jsonl").map(\.value.line)
        #expect(lines == [1, 2, 3, 4, 5, 6, 7])
        // The duplicate found after resuming still points at line 1, scored before the interruption.
        let dup = try JSONLines.read(AuditedRecord.self, from: out + "/scores.jsonl").first { $0.value.id == "dup" }
        #expect(dup?.value.duplicateOf == 1)
        // A changed input is refused instead of mixed in.
        try Data("\n".utf8).write(to: URL(fileURLWithPath: input), options: .atomic)
        await #expect(throws: DataAudit.AuditError.self) { try await audit.score() }
    }
}

/// The shipped evaluator and example policy on the project's own training pairs: harmful answers
/// must not be kept, ordinary ones must (the held-out figures are in docs/data-audit.md).
@Suite(.serialized) struct DataAuditTrainedEvaluatorTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test func harmfulTrainingPairsAreNotKeptAndOrdinaryOnesAre() async throws {
        let dir = try temporaryFolder()
        let input = dir + "/mix.jsonl"
        func head(_ relative: String, _ n: Int) throws -> [String] {
            Array(try String(contentsOfFile: Self.root + "/" + relative, encoding: .utf8).split(separator: "\n").prefix(n).map(String.init))
        }
        try write(try head("data/train/harmful_pairs.jsonl", 24) + head("data/train/ordinary_pairs.jsonl", 24), to: input)
        let evaluator = try TrainedValueEvaluator.load()
        let policy = try GuardPolicy.load(contentsOf: Self.root + "/examples/guard-policy.json")
        let audit = DataAudit(input: input, outputDirectory: dir + "/audit", policy: policy, evaluator: evaluator)
        try await audit.score()
        let summary = try audit.finish()
        let records = try JSONLines.read(AuditedRecord.self, from: dir + "/audit/scores.jsonl").map(\.value)
        let harmfulKept = records.filter { $0.id!.hasPrefix("ht-") && $0.decision == .keep }.count
        let ordinaryKept = records.filter { $0.id!.hasPrefix("ot-") && $0.decision == .keep }.count
        #expect(records.count == 48 && summary.records == 48)
        #expect(harmfulKept <= 2, "harmful pairs kept: \(harmfulKept) of 24")
        #expect(ordinaryKept >= 21, "ordinary pairs kept: \(ordinaryKept) of 24")
        #expect(records.allSatisfy { $0.values?.count == 10 && $0.inputValues?.count == 10 })
    }
}
