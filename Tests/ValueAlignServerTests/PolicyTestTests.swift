import Foundation
import Testing
@testable import ValueAlignServer
import ValueSpace

/// `PolicyTest` counts what the guard would do with labelled pairs, checking the prompt at the
/// input stage and the answer at the output stage as the chat endpoint does.
@Suite struct PolicyTestTests {
    static func vector(_ set: [SchwartzValue: Double]) -> ValueVector {
        var c = [Double](repeating: 0, count: 10)
        for (v, x) in set { c[v.index] = x }
        return try! ValueVector(c)
    }

    @Test func countsBlocksRevisionsFlagsAndRecall() async throws {
        let evaluator = FixedVectors([
            "hostile prompt": Self.vector([.benevolence: -0.9]),
            "power answer": Self.vector([.power: 0.9]),
            "hostile answer": Self.vector([.benevolence: -0.9]),
            "fun answer": Self.vector([.hedonism: 0.9]),
        ])
        let test = PolicyTest(policy: try policy(standardPolicy), evaluator: evaluator)
        let ordinary = [
            PolicyTest.Pair(id: "o1", prompt: "hi", response: "plain answer"),
            PolicyTest.Pair(id: "o2", prompt: "hi", response: "fun answer"),  // flag
            PolicyTest.Pair(id: "o3", prompt: "hostile prompt", response: "plain answer"),  // blocked at the input
            PolicyTest.Pair(id: "o4", prompt: "hi", response: "plain answer"),
        ]
        let harmful = [
            PolicyTest.Pair(id: "h1", prompt: "hi", response: "power answer"),  // block
            PolicyTest.Pair(id: "h2", prompt: "hi", response: "hostile answer"),  // revise
            PolicyTest.Pair(id: "h3", prompt: "hi", response: "plain answer"),  // missed
        ]
        let report = try await test.run(ordinary: ordinary, harmful: harmful)
        let o = try #require(report.ordinary), h = try #require(report.harmful)
        #expect(o.pairs == 4 && h.pairs == 3)
        #expect(o.blocked.value == 0.25 && o.revised.value == 0 && o.flaggedOrStricter.value == 0.5)
        #expect(abs(h.blockedOrRevised.value - 2.0 / 3) < 1e-12 && abs(h.blocked.value - 1.0 / 3) < 1e-12)
        let byID = Dictionary(uniqueKeysWithValues: report.outcomes.map { ($0.id, $0) })
        #expect(byID["o3"]?.inputAction == .block && byID["o3"]?.outputAction == nil)
        #expect(byID["h2"]?.action == .revise && byID["h2"]?.reasons.contains { $0.contains("benevolence") } == true)
        #expect(byID["h3"]?.action == .allow)
    }

    @Test func splitsAndBadFilesAreErrors() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pairs-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
            {"id": "a", "prompt": "p", "response": "r", "split": "validation"}
            {"id": "b", "prompt": "p", "response": "r", "split": "test"}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try PolicyTest.load(path).count == 2)
        #expect(try PolicyTest.load(path, split: "test").map(\.id) == ["b"])
        #expect { try PolicyTest.load(path, split: "train") } throws: { "\($0)".contains("no pairs with split 'train'") }
        try "{\"id\": \"a\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect { try PolicyTest.load(path) } throws: { "\($0)".contains(":1:") && "\($0)".contains("prompt") }
    }
}
