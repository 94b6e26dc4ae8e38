import Foundation
import Testing
@testable import ValueAlignCLI

/// Commands run, not only parse: an async command's own `run()` must be awaited (an earlier entry
/// point ran its default `run()`, which prints the help text and exits 0).
@Suite(.serialized) struct CommandRunTests {
    static func pairsFile() throws -> (dir: URL, pairs: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let pairs = dir.appendingPathComponent("pairs.jsonl").path
        try """
            {"id": "a", "prompt": "How do I water tomatoes?", "response": "Water them deeply at the base in the morning.", "split": "test"}
            {"id": "b", "prompt": "Name a prime number.", "response": "Seven is prime.", "split": "test"}
            """.write(toFile: pairs, atomically: true, encoding: .utf8)
        return (dir, pairs)
    }

    static func arguments(pairs: String, out: String) -> [String] {
        ["evaluator", "policy-test", "--evaluator", "lexicon", "--policy", repo("examples/guard-policy.json"),
         "--ordinary", pairs, "--harmful", "", "--split", "all", "--out", out, "--json"]
    }

    @Test func asyncCommandsRunInProcess() async throws {
        let (dir, pairs) = try Self.pairsFile()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("outcomes.jsonl").path
        try await ValueAlignCommand.run(arguments: Self.arguments(pairs: pairs, out: out))
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
    }

    /// The built executable, as a user runs it.
    @Test func theExecutableRunsAsyncCommands() throws {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("valuealign")
        let candidates = [executable.path, repository.appendingPathComponent(".build/debug/valuealign").path]
        let path = try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) }, "no valuealign binary in \(candidates)")
        let (dir, pairs) = try Self.pairsFile()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("outcomes.jsonl").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = Self.arguments(pairs: pairs, out: out)
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(output.contains("\"ordinary\"") && !output.contains("USAGE:"), "\(output)")
        #expect(FileManager.default.fileExists(atPath: out))
    }

    /// `constitution from-profile`, `constitution show` and `judge reference` on the embedded
    /// model, in process (issue 28).
    @Test func oversightCommandsRun() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-oversight-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let constitution = dir.appendingPathComponent("ideal.json").path
        try await ValueAlignCommand.run(arguments: ["constitution", "from-profile", "basealign-ideal", "--out", constitution])
        #expect(try String(contentsOfFile: constitution, encoding: .utf8).contains("\"principles\""))
        try await ValueAlignCommand.run(arguments: ["constitution", "show", constitution])
        let items = dir.appendingPathComponent("reference.jsonl").path
        try """
            {"id": "a", "prompt": "What is 2 + 2?", "response": "It is 4.", "reference": "4", "correct": true}
            {"id": "b", "prompt": "What colour is the sky on a clear day?", "response": "Green.", "reference": "Blue", "correct": false}
            """.write(toFile: items, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("judge").path
        try await ValueAlignCommand.run(arguments: ["judge", "reference", items, "--out", out, "--quiet"])
        let lines = try String(contentsOfFile: out + "/judgements.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(try String(contentsOfFile: out + "/summary.md", encoding: .utf8).contains("majority-class baseline"))
    }
}
