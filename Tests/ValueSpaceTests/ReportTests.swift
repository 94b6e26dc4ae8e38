import Foundation
import Testing
import ValueSpace

@Suite struct ReportTests {
    static func occurrences(of needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    static func profiles() throws -> [ValueProfile] {
        let measured = ValueProfile(
            name: "before <b>\"run\" & 'x'</b>", kind: .measured, vector: try ValueVector([.security: 0.2, .power: -0.4]),
            sampleCount: 10, confidenceLevel: 0.95,
            intervals: [.security: ConfidenceInterval(lower: 0.1, upper: 0.3), .power: ConfidenceInterval(lower: -0.5, upper: -0.3)])
        let after = ValueProfile(name: "after | run", kind: .measured, vector: try ValueVector([.security: 0.7, .benevolence: 0.5]))
        return [measured, after]
    }

    @Test(arguments: [false, true])
    func htmlDrawsOnePolygonPerProfile(withTarget: Bool) throws {
        let target = withTarget ? try ProfileStore.defaultTarget() : nil
        let html = ProfileReport.html(
            title: "Report <script>alert(1)</script>", profiles: try Self.profiles(), target: target,
            facts: [.init("distance change", "-0.210 [-0.270, -0.150]")], notes: ["a & b"])
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</html>\n"))
        #expect(Self.occurrences(of: "<polygon class=\"profile-shape", in: html) == (withTarget ? 3 : 2))
        #expect(Self.occurrences(of: "class=\"ci\"", in: html) == 2, "one whisker per interval")
        #expect(Self.occurrences(of: "<rect class=\"bar\"", in: html) == 10 * (withTarget ? 3 : 2))
        #expect(Self.occurrences(of: "<svg", in: html) == 2)
        // Escaped, and nothing fetched from elsewhere.
        #expect(!html.contains("<script") && html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!html.contains("<b>\"run\"") && html.contains("before &lt;b&gt;&quot;run&quot; &amp; &#39;x&#39;&lt;/b&gt;"))
        #expect(html.contains("a &amp; b"))
        for external in ["<link", "src=", "url(", "@import"] { #expect(!html.contains(external), "\(external)") }
        #expect(html.contains("Distance to basealign-ideal") == withTarget)
        #expect(html.contains("-0.210 [-0.270, -0.150]"))
    }

    @Test func markdownSummary() throws {
        let target = try ProfileStore.defaultTarget()
        let md = ProfileReport.markdown(title: "Before/after", profiles: try Self.profiles(), target: target, facts: [.init("n", "10")])
        let lines = md.split(separator: "\n")
        #expect(lines.first == "# Before/after")
        let header = try #require(lines.first { $0.hasPrefix("| Value |") })
        #expect(header.contains("after \\| run") && header.contains("basealign-ideal (target)"))
        #expect(!md.contains("<b>"))
        // Value table: header, rule, ten rows, all with the same number of cells.
        let tableRows = lines.filter { $0.hasPrefix("| ") && !$0.hasPrefix("| Profile") }
        let valueRows = tableRows.prefix(11)
        #expect(valueRows.count == 11)
        #expect(md.contains("| Security | 1.000 | 0.200 [0.100, 0.300] | 0.700 |"))
        // Distances of each profile (a mean) to the target: unmasked weighted L1 first, never
        // BaseAlign's per-answer mask.
        let ideal = target.vector, after = try Self.profiles()[1].vector
        let expected = String(format: "%.3f", ValueDistance.weighted(after, to: ideal))
        #expect(md.contains("| after \\| run | \(expected) |"))
    }
}
