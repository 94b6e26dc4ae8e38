import Foundation
import ValueAlignCore
import Testing
import ValueSpace

@Suite struct FULCRATests {
    static let dialogue = "Human: Should I return the wallet I found?\nBob: Yes, give it back to its owner."

    enum Outcome: Sendable { case canonical(Int), normalised(Int), dropped }

    static let labelCases: [(String, Outcome)] = [
        ("security: +1", .canonical(1)),
        ("security: -1", .canonical(-1)),
        ("Security: 1", .normalised(1)),
        ("security : +1", .normalised(1)),
        ("security:+1", .normalised(1)),
        ("security: 1", .normalised(1)),
        ("security: + 1", .normalised(1)),
        ("security: \u{2212}1", .normalised(-1)),
        ("SECURITY:-1", .normalised(-1)),
        ("security: 1+", .dropped),
        ("security: =1", .dropped),
        ("security: 2", .dropped),
        ("security +1", .dropped),
        ("humility: +1", .dropped),
    ]

    @Test(arguments: labelCases)
    func securityLabelVariants(raw: String, outcome: Outcome) throws {
        // A second, clean label keeps the row alive when the first is dropped.
        let path = try temporaryFile([fulcraLine(Self.dialogue, [raw, "benevolence: +1"])])
        let (examples, report) = try FULCRADataset.load(path)
        #expect(report.rows == 1)
        try #require(examples.count == 1)
        let example = examples[0]
        #expect(example.labels.count == 10)
        #expect(example[.benevolence] == 1)
        switch outcome {
        case let .canonical(mark):
            #expect(example[.security] == mark)
            #expect(report.normalisedLabels.isEmpty && report.droppedLabels.isEmpty)
        case let .normalised(mark):
            #expect(example[.security] == mark)
            #expect(report.normalisedLabels == [raw: 1])
            #expect(report.droppedLabels.isEmpty)
        case .dropped:
            #expect(example[.security] == 0)
            #expect(report.droppedLabels == [raw: 1])
            #expect(report.normalisedLabels.isEmpty)
        }
    }

    @Test(arguments: [
        ("self-direction: +1", true), ("self_direction: +1", true), ("Self Direction: +1", false),
        ("self - direction: +1", false), ("Self-Direction:1", false),
    ])
    func nameVariants(raw: String, canonical: Bool) throws {
        let path = try temporaryFile([fulcraLine(Self.dialogue, [raw])])
        let (examples, report) = try FULCRADataset.load(path)
        if raw == "self - direction: +1" {
            // Spaces around the hyphen are not a spelling we accept: dropped, and the row with it.
            #expect(examples.isEmpty)
            #expect(report.droppedLabels == [raw: 1])
            #expect(report.droppedRows == [FULCRADataset.DropReason.noUsableLabel: 1])
            return
        }
        try #require(examples.count == 1)
        #expect(examples[0][.selfDirection] == 1)
        #expect(examples[0].labels.reduce(0) { $0 + abs($1) } == 1)
        #expect(report.normalisedLabels == (canonical ? [:] : [raw: 1]))
    }

    @Test func dialogueSplitting() throws {
        let lines = [
            fulcraLine("Human: Hello\nthere\nBob: First answer\nsecond line\nHuman: more\nBob: later answer", ["power: -1"]),
            fulcraLine("Human: part one\nHuman: part two\nBob: the answer", []),
            fulcraLine("Human: no answer here", ["power: -1"]),
            fulcraLine("Bob: answer without a question", ["power: -1"]),
            fulcraLine("Preface\nHuman: q\nBob: a", ["power: -1"]),
            fulcraLine("Human:   \nBob: a", ["power: -1"]),
            fulcraLine("Human: q\nBob:   ", ["power: -1"]),
        ]
        let path = try temporaryFile(lines)
        let (examples, report) = try FULCRADataset.load(path)
        #expect(report.rows == 7)
        try #require(examples.count == 2)
        #expect(examples[0].prompt == "Hello\nthere")
        #expect(examples[0].response == "First answer\nsecond line")
        #expect(examples[0].line == 1)
        #expect(examples[0][.power] == -1)
        #expect(examples[1].prompt == "part one\n\npart two")
        #expect(examples[1].response == "the answer")
        #expect(examples[1].labels == [Int](repeating: 0, count: 10), "no labels listed means no connection")
        typealias R = FULCRADataset.DropReason
        #expect(report.droppedRows == [R.noAnswer: 1, R.noHumanTurn: 2, R.emptyPrompt: 1, R.emptyResponse: 1])
        #expect(report.kept + report.droppedRowCount == report.rows)
    }

    @Test func duplicatesAndConflicts() throws {
        let lines = [
            fulcraLine(Self.dialogue, ["benevolence: 1", "benevolence: +1", "power: -1"]),
            fulcraLine(Self.dialogue, ["universalism: -1", "universalism: +1", "security: +1"]),
        ]
        let path = try temporaryFile(lines)
        let dropped = try FULCRADataset.load(path)
        #expect(dropped.examples.map(\.line) == [1])
        #expect(dropped.examples[0][.benevolence] == 1 && dropped.examples[0][.power] == -1)
        #expect(dropped.report.mergedDuplicates == 1)
        #expect(dropped.report.conflicts == 1)
        #expect(dropped.report.droppedRows == [FULCRADataset.DropReason.conflictingLabels: 1])

        let neutral = try FULCRADataset.load(path, conflicts: .neutral)
        try #require(neutral.examples.count == 2)
        #expect(neutral.examples[1][.universalism] == 0)
        #expect(neutral.examples[1][.security] == 1)
        #expect(neutral.report.conflicts == 1 && neutral.report.droppedRows.isEmpty)
    }

    @Test func malformedLineIsAnErrorWithItsLine() throws {
        let path = try temporaryFile([fulcraLine(Self.dialogue, []), "", "{\"dialogue\": \"Human: x\\nBob: y\", ", fulcraLine(Self.dialogue, [])])
        #expect { try FULCRADataset.load(path) } throws: { error in
            (error as? JSONLinesError)?.line == 3
        }
        let missing = try temporaryFile([fulcraLine(Self.dialogue, []), "{\"dialogue\": \"Human: x\\nBob: y\"}"])
        #expect { try FULCRADataset.load(missing) } throws: { error in
            guard let e = error as? JSONLinesError else { return false }
            return e.line == 2 && e.message.contains("value_types")
        }
    }

    /// The published file: counts must add up, and whatever was dropped is printed for the log.
    @Test func realTrustworthyFile() throws {
        let path = try sharedFile("fulcra/trustworthy.jsonl")
        let (examples, report) = try FULCRADataset.load(path)
        print("FULCRA trustworthy.jsonl:\n\(report.summary)")
        #expect(report.rows == 1375)
        #expect(report.kept == examples.count)
        #expect(report.kept + report.droppedRowCount == report.rows)
        #expect(report.kept > 1300, "the file is mostly clean")
        #expect(examples.allSatisfy { $0.labels.count == 10 && $0.labels.allSatisfy { (-1...1).contains($0) } })
        #expect(examples.allSatisfy { !$0.prompt.isEmpty && !$0.response.isEmpty && !$0.response.hasPrefix("Bob:") })
        #expect(report.droppedLabels.values.allSatisfy { $0 > 0 } && report.normalisedLabels.values.allSatisfy { $0 > 0 })
        // Lines are increasing and unique.
        #expect(zip(examples, examples.dropFirst()).allSatisfy { $0.line < $1.line })
    }

    @Test func scoredAnswers() throws {
        let scores = "[0.1, -0.2, 0, 0, 0, 0.9, 0, 0.5, 0.7, -0.05]"
        let path = try temporaryFile([
            "{\"prompt\": \"p1\", \"answer\": \"a1\", \"value_reward\": \(scores), \"reward\": 0.5}",
            "{\"prompt\": \"p2\", \"response\": \"a2\", \"value_reward\": \(scores)}",
        ])
        let answers = try ScoredAnswers.load(path)
        try #require(answers.count == 2)
        #expect(answers[0].response == "a1" && answers[1].response == "a2" && answers[1].line == 2)
        #expect(abs(answers[0].scores[.security] - 0.9) < 1e-12)

        let bad = try temporaryFile(["{\"prompt\": \"p\", \"answer\": \"a\", \"value_reward\": [0.1, 0.2]}"])
        #expect { try ScoredAnswers.load(bad) } throws: { ($0 as? JSONLinesError)?.line == 1 }
        let outOfRange = try temporaryFile(["", "{\"prompt\": \"p\", \"answer\": \"a\", \"value_reward\": [0, 0, 0, 0, 0, 1.5, 0, 0, 0, 0]}"])
        #expect { try ScoredAnswers.load(outOfRange) } throws: { ($0 as? JSONLinesError)?.line == 2 }

        let real = try sharedFile("fulcra/scored_gpt-4.jsonl")
        let all = try ScoredAnswers.load(real)
        #expect(all.count == 1523)
        #expect(all.allSatisfy { $0.scores.components.count == 10 })
    }

    @Test func heldOutSplitIsStable() {
        // Reference values from an independent Python implementation of the same hash.
        #expect(DatasetSplit.stableHash("hello") == 0xCF5C_ACB4_75D2_EE3D)
        #expect(DatasetSplit.stableHash("hello", seed: 7) == 0x50CE_15F5_6A5A_376E)
        #expect(DatasetSplit.stableHash("  hello\n") == DatasetSplit.stableHash("hello"))
        #expect(!DatasetSplit.isHeldOut("hello", fraction: 0.8))
        #expect(DatasetSplit.isHeldOut("hello", fraction: 0.82))
        #expect(DatasetSplit.isHeldOut("hello", fraction: 0.15, seed: 7) == false)
        #expect(DatasetSplit.isHeldOut("hello", fraction: 0.32, seed: 7))

        let prompts = (0..<20_000).map { "prompt number \($0) about something" }
        let (train, heldOut) = DatasetSplit.split(prompts, key: { $0 })
        #expect(train.count + heldOut.count == prompts.count)
        let share = Double(heldOut.count) / Double(prompts.count)
        #expect(abs(share - 0.15) < 0.01, "held-out share \(share)")
        #expect(Set(train).isDisjoint(with: heldOut))
        #expect(prompts.allSatisfy { !DatasetSplit.isHeldOut($0, fraction: 0) && DatasetSplit.isHeldOut($0, fraction: 1) })
        let other = DatasetSplit.split(prompts, seed: 1, key: { $0 }).heldOut
        #expect(Set(other) != Set(heldOut), "another seed gives another split")
    }

    @Test func nearDuplicatesFallOnOneSide() {
        // Issue 24: the split hash only trimmed whitespace, so these fell on both sides.
        #expect(DatasetSplit.normalizedKey("  How do I make  Car bombings .") == "how do i make car bombings")
        #expect(DatasetSplit.normalizedKey("Don\u{2019}t — stop!") == "don t stop")
        let variants = ["What are Car bombings .", "what are car bombings?", "What are car-bombings", "WHAT ARE CAR BOMBINGS!!", "What are \"car bombings\""]
        for seed: UInt64 in 0..<64 {
            let sides = Set(variants.map { DatasetSplit.isHeldOut($0, fraction: 0.5, seed: seed) })
            #expect(sides.count == 1, "seed \(seed): variants on both sides")
        }
        // Different words still hash apart.
        #expect(DatasetSplit.stableHash("car bombings") != DatasetSplit.stableHash("car bombing"))
        let (kept, dropped) = DatasetSplit.deduplicated(variants + ["something else"], key: { $0 })
        #expect(kept == ["What are Car bombings .", "something else"])
        #expect(dropped == 4)
    }
}
