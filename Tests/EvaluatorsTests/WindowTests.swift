import Evaluators
import Foundation
import LanguageModels
import MLXEngine
import Testing
import ValueAlignTesting
import ValueSpace

/// Whole-text evaluation (issue 24, item 1): long responses are read in overlapping windows, and
/// one opposing window anywhere decides the value.
@Suite struct WindowTests {
    static func assessment(_ set: [SchwartzValue: Double]) -> ValueAssessment {
        var c = [Double](repeating: 0, count: 10)
        for (v, x) in set { c[v.index] = x }
        return ValueAssessment(vector: try! ValueVector(c), probabilities: c.map { x in [max(0, -x), 1 - abs(x), max(0, x)] })
    }

    @Test func oneOpposingWindowCountsAndSupportIsAveraged() throws {
        let harmless = Self.assessment([.benevolence: 0.6, .security: 0.2])
        let harmful = Self.assessment([.benevolence: -0.8, .security: 0.4])
        let combined = try WindowAggregation.combine([harmless, harmless, harmless, harmful])
        #expect(combined.vector[.benevolence] == -0.8)  // the most opposed window
        #expect(combined.probabilities[SchwartzValue.benevolence.index] == harmful.probabilities[SchwartzValue.benevolence.index])
        #expect(abs(combined.vector[.security] - 0.25) < 1e-12)  // support: the mean
        // Mild dips do not count as opposition: -0.2 is within the threshold.
        let mild = try WindowAggregation.combine([harmless, Self.assessment([.benevolence: -0.2])])
        #expect(abs(mild.vector[.benevolence] - 0.2) < 1e-12)
        #expect(try WindowAggregation.combine([harmful]) == harmful)
        #expect(throws: EvaluatorError.self) { try WindowAggregation.combine([]) }
    }

    @Test func windowsCoverTheWholeResponseWithOverlap() throws {
        let encoder = try PairEncoding.Encoder(encoding: PairEncoding(maxPromptTokens: 16, maxResponseTokens: 40),
                                               tokenizer: ByteTokenizer(), template: .chatml)
        let short = ValuePair(prompt: "q", response: String(repeating: "a", count: 30))
        #expect(encoder.encodeWindows(short) == [encoder.encode(short)])
        let text = (0..<200).map { String(UnicodeScalar(UInt8(97 + $0 % 26))) }.joined()
        let windows = encoder.encodeWindows(ValuePair(prompt: "q", response: text), overlap: 10)
        // One paragraph of 200 bytes: windows of 40 advancing by 30 (starts 0, 30, ..., 180); the
        // paragraph pass gives the same windows, kept once.
        #expect(windows.count == 7)
        #expect(windows.allSatisfy { $0.response.count <= 41 && !$0.truncated && $0.prompt == windows[0].prompt })
        let bytes = Array(text.utf8).map(Int.init)
        #expect(windows.last.map { Array($0.response.dropLast()) } == Array(bytes[180...]))
        var covered = Set<Int>()
        for (k, w) in windows.enumerated() { for j in 0..<(w.response.count - 1) { covered.insert(k * 30 + j) } }
        #expect(covered == Set(0..<200))
        // A response past the token cap is read that far and marked truncated.
        let capped = encoder.encodeWindows(ValuePair(prompt: "q", response: String(repeating: "z", count: 5_000)), overlap: 10, maxTokens: 130)
        #expect(capped.allSatisfy(\.truncated) && capped.allSatisfy { $0.response.count <= 41 })
        #expect(capped.map { $0.response.count - 1 }.reduce(0, +) >= 130)
        // A paragraph is also read on its own: the last line below is one window, without the text
        // before it; a line shorter than the minimum is joined with the next.
        let lines = String(repeating: "b", count: 95) + "\nok\n" + "HARM HARM HARM HARM HARM HARM"
        let split = encoder.encodeWindows(ValuePair(prompt: "q", response: lines), overlap: 10, minimumParagraphTokens: 8)
        let harm = Array("ok\nHARM HARM HARM HARM HARM HARM".utf8).map(Int.init)
        #expect(split.contains { Array($0.response.dropLast()) == harm }, "\(split.map { $0.response.count })")
    }
}
