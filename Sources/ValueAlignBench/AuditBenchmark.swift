import DataAudit
import Evaluators
import Foundation
import LanguageModels
import MLXEngine
import ValueAlignCore
import ValueAlignServer
import ValueSpace

/// `valuealign bench audit`: records/s of `audit-data` end to end (reading, scoring with the
/// shipped evaluator, policy, duplicate and overlap checks, writing) on real records, beside a
/// plain full prefill of the same pairs by the same model in the same run (the anchor; goal: the
/// audit at >= 2x its records/s, since the evaluator needs only its layers). Then the audit's
/// peak memory on synthetic files of increasing size with the lexicon evaluator (goal: flat).
public struct AuditBenchmark {
    public struct Parameters: Sendable {
        public var modelPath: String
        public var dataPath: String
        public var policyPath: String
        public var records = 128
        public var iterations = 3
        /// Line counts of the synthetic files for the memory figures; empty: skip.
        public var memoryLines: [Int] = [10_000, 100_000]
        public var workDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("valuealign-bench-audit").path
        public init(modelPath: String, dataPath: String, policyPath: String) {
            self.modelPath = modelPath
            self.dataPath = dataPath
            self.policyPath = policyPath
        }
    }

    let parameters: Parameters
    public init(_ parameters: Parameters) { self.parameters = parameters }

    /// The process's peak resident memory so far (VmHWM) in MiB, and the current one (VmRSS).
    static func memory() -> (peak: Double, current: Double) {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Double {
            for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
                return Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0").map { $0 / 1024 } ?? 0
            }
            return 0
        }
        return (field("VmHWM"), field("VmRSS"))
    }

    /// A JSONL file of `lines` distinct prompt/response records written from templates.
    static func syntheticFile(lines: Int, path: String) throws {
        let subjects = ["the council", "my neighbour", "a small company", "the new teacher", "our team", "the library", "a volunteer group", "the hospital"]
        let acts = ["share the budget openly", "help families who lost their homes", "keep the old rules", "win the regional contest",
                    "protect the river from waste", "take credit for the work", "try something new each week", "ignore the complaints"]
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else { throw DataAudit.AuditError(description: "cannot write \(path)") }
        defer { try? handle.close() }
        var chunk = ""
        for i in 0..<lines {
            let s = subjects[i % subjects.count], a = acts[(i / 8) % acts.count]
            let prompt = "Case \(i): \(s) wants to \(a). What should they weigh before deciding, given \(i % 97) people are affected?"
            let response = "They should talk to the \(i % 97) people first, \(a) only if it is fair, and write down why (note \(i))."
            let object = ["id": "s\(i)", "prompt": prompt, "response": response, "source": "synthetic-\(i % 5)"]
            chunk += String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self) + "\n"
            if i % 1000 == 999 { try handle.write(contentsOf: Data(chunk.utf8)); chunk = "" }
        }
        try handle.write(contentsOf: Data(chunk.utf8))
    }

    public func run(progress: (String) -> Void) async throws -> BenchmarkReport {
        let p = parameters
        var report = BenchmarkReport(benchmark: "audit")
        try? FileManager.default.removeItem(atPath: p.workDirectory)
        try FileManager.default.createDirectory(atPath: p.workDirectory, withIntermediateDirectories: true)
        let policy = try GuardPolicy.load(contentsOf: p.policyPath)
        let sets = ContaminationIndex.defaultSets()
        let contamination = try ContaminationIndex.load(sets.sets.map { (name: $0.0, path: $0.1) })

        // Memory first, before the model is loaded, so the peaks are the audit's own.
        var peaks: [(Int, Double)] = []
        for lines in p.memoryLines {
            let file = "\(p.workDirectory)/synthetic-\(lines).jsonl"
            progress("memory: writing and auditing \(lines) synthetic records (lexicon evaluator)")
            try Self.syntheticFile(lines: lines, path: file)
            var options = DataAudit.Options()
            options.batchSize = 256
            let audit = DataAudit(input: file, outputDirectory: "\(p.workDirectory)/memory-\(lines)", policy: policy,
                                  evaluator: LexiconValueEvaluator(), options: options, contamination: contamination)
            let start = Date()
            try await audit.score()
            try audit.finish()
            let seconds = Date().timeIntervalSince(start)
            let peak = Self.memory().peak
            peaks.append((lines, peak))
            report.figures.append(BenchmarkFigure(name: "peak memory after auditing \(lines) records", value: peak, unit: "MiB", higherIsBetter: false))
            report.notes.append(String(format: "%d synthetic records with the lexicon evaluator: %.1f s (%.0f records/s), file %.1f MiB", lines, seconds,
                                       Double(lines) / seconds, Double((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0) / 1_048_576))
            try? FileManager.default.removeItem(atPath: file)
        }
        if peaks.count >= 2 {
            report.notes.append(String(format: "peak memory %.0f MiB at %d records, %.0f MiB at %d (the duplicate index keeps ~0.5 KB per record; texts are not kept)",
                                       peaks[0].1, peaks[0].0, peaks[peaks.count - 1].1, peaks[peaks.count - 1].0))
        }

        progress("loading the evaluator")
        let evaluator = try TrainedValueEvaluator.load(model: p.modelPath, batchSize: 32)
        // The records audited: the first N of the data file, copied so every run reads the same.
        let input = "\(p.workDirectory)/records.\(p.dataPath.lowercased().hasSuffix(".csv") ? "csv" : "jsonl")"
        var examples: [DatasetExample] = []
        do {
            let reader = try DatasetReader(path: p.dataPath)
            var kept: [String] = reader.csvHeader.map { [$0] } ?? []
            while examples.count < p.records, let item = try reader.next() {
                if case let .example(e) = item { examples.append(e); kept.append(e.raw) }
            }
            try Data((kept.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: input))
        }
        guard !examples.isEmpty else { throw DataAudit.AuditError(description: "\(p.dataPath) has no usable records") }
        progress("audit: \(examples.count) records of \(p.dataPath) (policy \(policy.name), evaluator \(evaluator.name))")
        var run = 0
        func auditMilliseconds(checkPrompts: Bool) async throws -> Double {
            try await asyncMedianMilliseconds(warmup: 1, iterations: p.iterations) {
                run += 1
                var options = DataAudit.Options()
                options.checkPrompts = checkPrompts
                let audit = DataAudit(input: input, outputDirectory: "\(p.workDirectory)/audit-\(run)", policy: policy, evaluator: evaluator,
                                      options: options, contamination: contamination)
                try await audit.score()
                try audit.finish()
            }
        }
        let auditMs = try await auditMilliseconds(checkPrompts: true)
        progress("audit without the prompt check (--no-prompt-check)")
        let responsesOnlyMs = try await auditMilliseconds(checkPrompts: false)

        progress("anchor: full prefill of the same pairs")
        var encoded: [PairEncoding.Encoded] = []
        for e in examples {
            encoded.append(evaluator.encode(ValuePair(prompt: e.prompt, response: e.response)))
            if let r = e.rejected { encoded.append(evaluator.encode(ValuePair(prompt: e.prompt, response: r))) }
        }
        encoded.sort { $0.count < $1.count }  // batches of similar lengths, as a sensible prefill would run them
        let full = try BaseModel.load(p.modelPath)
        func prefillMilliseconds(allPositions: Bool) throws -> Double {
            try medianMilliseconds(warmup: 1, iterations: p.iterations) {
                for start in stride(from: 0, to: encoded.count, by: 32) {
                    let part = Array(encoded[start..<min(start + 32, encoded.count)])
                    let batch = try TokenBatch(prompts: part.map(\.prompt), responses: part.map(\.response), padTokenId: full.tokenizer.padTokenId)
                    let out = try full.model.forward(batch.tokens, cache: nil, keyPadding: nil, captureLayers: [])
                    if allPositions {
                        try eval(full.model.logits(out.hidden))
                    } else {
                        let last = try MLXArray(part.map { Int32($0.count - 1) }, shape: [part.count, 1, 1])
                        try eval(full.model.logits(out.hidden.takeAlong(last, axis: 1)))
                    }
                }
            }
        }
        let prefillMs = try prefillMilliseconds(allPositions: false)
        progress("anchor: full prefill with logits at every position (scoring)")
        let scoringMs = try prefillMilliseconds(allPositions: true)
        let rate = Double(examples.count) / auditMs * 1000, anchorRate = Double(examples.count) / prefillMs * 1000
        let tokens = encoded.reduce(0) { $0 + $1.count }
        report.figures.append(BenchmarkFigure(
            name: "audited records/s (\(examples.count) records)", value: rate, unit: "records/s", anchorName: "full prefill of the same pairs",
            anchorValue: anchorRate, higherIsBetter: true, goal: ">= 2x"))
        report.figures.append(BenchmarkFigure(
            name: "audited records/s, no prompt check", value: Double(examples.count) / responsesOnlyMs * 1000, unit: "records/s",
            anchorName: "full prefill of the same pairs", anchorValue: anchorRate, higherIsBetter: true, goal: ">= 2x"))
        report.figures.append(BenchmarkFigure(
            name: "audited records/s (vs scoring prefill)", value: rate, unit: "records/s", anchorName: "prefill + logits at every position",
            anchorValue: Double(examples.count) / scoringMs * 1000, higherIsBetter: true))
        report.notes.append(String(format: "%d records, %d pairs, %d tokens (chat format) in all; the audit also checks each prompt alone (the policy's input stage) unless --no-prompt-check, and reads long responses in windows; the evaluator runs %@ of the model's %d layers, so against a prefill with last-position logits its ceiling is about %.2fx",
                                   examples.count, encoded.count, tokens, "\(evaluator.configuration.layersRun)", evaluator.configuration.baseModel.layerCount,
                                   Double(evaluator.configuration.baseModel.layerCount) / Double(max(1, evaluator.configuration.layersRun))))
        report.notes.append("BLAS kernels \(BLASCore.current ?? "?"); kernel ISA \(Fast.kernelISA); medians of \(p.iterations) runs after one warm-up; audit timing includes reading, checks and writing")
        return report
    }
}

/// `medianMilliseconds` for async bodies.
func asyncMedianMilliseconds(warmup: Int, iterations: Int, _ body: () async throws -> Void) async throws -> Double {
    for _ in 0..<warmup { try await body() }
    var times: [Double] = []
    for _ in 0..<iterations {
        let start = DispatchTime.now().uptimeNanoseconds
        try await body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    return times.sorted()[times.count / 2]
}
