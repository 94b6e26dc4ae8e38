import ArgumentParser
import BaseAlign
import Foundation

/// `valuealign compare RUN...`: one Markdown table of finished `valuealign align` runs.
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare finished alignment runs in one Markdown table.",
        discussion: """
            Each RUN is a run folder of `valuealign align` (or its report.json). A row holds the \
            run's target, method and reward, training steps and tokens, the BaseAlign distance to \
            its target before and after with the paired change and its 95% interval (✓ when the \
            interval lies below zero), harmful-answer and over-refusal rates before and after, the \
            perplexity ratio on the held-out text, mean answer length and the seed.
            """)

    @Argument(help: "Run folders of `valuealign align`.")
    var runs: [String]

    @Option(help: "Write the table to this file as well as standard output.")
    var out: String?

    func validate() throws {
        if runs.isEmpty { throw ValidationError("give at least one run folder") }
    }

    func run() throws {
        let reports = try runs.map { (name: URL(fileURLWithPath: $0).lastPathComponent, report: try AlignmentReport.load($0)) }
        let table = AlignmentReport.comparisonTable(reports)
        print(table, terminator: "")
        if let out { try table.write(toFile: out, atomically: true, encoding: .utf8) }
    }
}
