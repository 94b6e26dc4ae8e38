public import Foundation
import ValueAlignCore
import ValueSpace

/// The audit's totals, read back from `scores.jsonl` in one pass (so a resumed run reports the
/// whole file): counts, the value distribution, per-source breakdown, the worst records and the
/// suspect preference pairs.
public struct AuditSummary: Sendable, Codable {
    public struct SourceRow: Sendable, Codable {
        public var source: String
        public var records = 0
        public var keep = 0, review = 0, drop = 0
        public var meanValues = [Double](repeating: 0, count: 10)
        public var meanDistance = 0.0
    }

    public struct Example: Sendable, Codable {
        public var line: Int
        public var id: String
        public var source: String
        public var decision: AuditedRecord.Decision
        public var distance: Double?
        public var reasons: [String]
        public var prompt: String
        public var response: String
    }

    public var input: String
    public var policy: String
    public var evaluator: String
    public var records = 0
    public var pairs = 0
    public var preferencePairs = 0
    public var badRecords = 0
    public var decisions: [String: Int] = [:]
    public var actions: [String: Int] = [:]
    public var duplicates = 0
    public var contaminated = 0
    public var contaminatedBySet: [String: Int] = [:]
    public var evaluationSets: [String: Int] = [:]
    public var chosenCloser = 0
    public var suspectLabels = 0
    public var meanValues = [Double](repeating: 0, count: 10)
    public var meanDistance = 0.0
    /// Per value, counts of response vectors in 20 bins over [-1, 1].
    public var histograms = [[Int]](repeating: [Int](repeating: 0, count: 20), count: 10)
    public var sources: [SourceRow] = []
    public var worst: [Example] = []
    public var suspects: [Example] = []
    public var bad: [BadRecord] = []
    public var elapsedSeconds: Double?
    public var recordsPerSecond: Double?

    static let listed = 15
}

extension DataAudit {
    /// Writes the filtered copies, bad-lines.jsonl, summary.json and report.html from
    /// `scores.jsonl` and the input, reading both in step (records verbatim, in input order).
    @discardableResult
    public func finish(elapsed: TimeInterval? = nil, scoredNow: Int = 0) throws -> AuditSummary {
        let reader = try DatasetReader(path: input, csvColumns: csvColumns)
        if !FileManager.default.fileExists(atPath: scoresPath) { FileManager.default.createFile(atPath: scoresPath, contents: Data()) }
        let scores = try LineReader(path: scoresPath)
        let ext = reader.isCSV ? "csv" : "jsonl"
        var files: [AuditedRecord.Decision: FileHandle] = [:]
        for d in [AuditedRecord.Decision.keep, .review, .drop] {
            let path = "\(outputDirectory)/\(d.rawValue).\(ext)"
            FileManager.default.createFile(atPath: path, contents: reader.csvHeader.map { Data(($0 + "\n").utf8) } ?? Data())
            let handle = FileHandle(forWritingAtPath: path)
            _ = try handle?.seekToEnd()  // after the CSV header
            files[d] = handle
        }
        let badPath = outputDirectory + "/bad-lines.jsonl"
        try? FileManager.default.removeItem(atPath: badPath)
        defer { for f in files.values { try? f.close() } }

        var summary = AuditSummary(input: input, policy: policy.name, evaluator: evaluator.name)
        summary.evaluationSets = contamination.sets
        var sources: [String: AuditSummary.SourceRow] = [:]
        var distanceCount = 0
        var worst: [AuditSummary.Example] = [], suspects: [(Double, AuditSummary.Example)] = []
        let decoder = JSONDecoder()
        while let (scoreLine, text) = try scores.next() {
            if text.isEmpty { continue }
            let record: AuditedRecord
            do { record = try decoder.decode(AuditedRecord.self, from: Data(text.utf8)) } catch {
                throw AuditError(description: "\(scoresPath):\(scoreLine): not an audit record (\(error)); use --restart")
            }
            // The input record this score belongs to, as written (not parsed again).
            var raw: String?
            while let (line, text) = try reader.nextText() {
                if line == record.line { raw = text; break }
                if line > record.line { break }
            }
            guard let raw else {
                throw AuditError(description: "\(scoresPath):\(scoreLine) scores line \(record.line), which \(input) does not have (the input changed?); use --restart")
            }
            summary.records += 1
            summary.decisions[record.decision.rawValue, default: 0] += 1
            if record.decision == .bad {
                summary.badRecords += 1
                let bad = BadRecord(line: record.line, message: record.error ?? "unreadable", raw: raw)
                try JSONLines.append(bad, to: badPath)
                if summary.bad.count < AuditSummary.listed { summary.bad.append(bad) }
                continue
            }
            try files[record.decision]!.write(contentsOf: Data((raw + "\n").utf8))
            if record.kind == .preference { summary.preferencePairs += 1 } else { summary.pairs += 1 }
            if let a = record.action { summary.actions[a.rawValue, default: 0] += 1 }
            if record.duplicateOf != nil { summary.duplicates += 1 }
            if let set = record.contaminationSet {
                summary.contaminated += 1
                summary.contaminatedBySet[set, default: 0] += 1
            }
            if record.chosenCloser == true { summary.chosenCloser += 1 }
            let source = record.source ?? "?"
            var row = sources[source] ?? AuditSummary.SourceRow(source: source)
            row.records += 1
            switch record.decision {
            case .keep: row.keep += 1
            case .review: row.review += 1
            case .drop: row.drop += 1
            case .bad: break
            }
            if let v = record.values, v.count == 10 {
                for i in 0..<10 {
                    row.meanValues[i] += v[i]
                    summary.meanValues[i] += v[i]
                    summary.histograms[i][min(19, max(0, Int((v[i] + 1) / 2 * 20)))] += 1
                }
            }
            if let d = record.distance {
                row.meanDistance += d
                summary.meanDistance += d
                distanceCount += 1
            }
            sources[source] = row
            let example = AuditSummary.Example(line: record.line, id: record.id ?? "", source: source, decision: record.decision, distance: record.distance,
                                               reasons: record.reasons, prompt: record.promptExcerpt ?? "", response: record.responseExcerpt ?? "")
            if record.decision != .keep {
                worst.append(example)
                worst.sort { ($0.decision, $0.distance ?? 0) > ($1.decision, $1.distance ?? 0) }
                if worst.count > AuditSummary.listed { worst.removeLast() }
            }
            if record.suspectLabel == true, let d = record.distance, let r = record.rejectedDistance {
                summary.suspectLabels += 1
                suspects.append((d - r, example))
                suspects.sort { $0.0 > $1.0 }
                if suspects.count > AuditSummary.listed { suspects.removeLast() }
            }
        }
        let scored = summary.pairs + summary.preferencePairs
        if scored > 0 { summary.meanValues = summary.meanValues.map { $0 / Double(scored) } }
        if distanceCount > 0 { summary.meanDistance /= Double(distanceCount) }
        summary.sources = sources.values.map { r in
            var r = r
            let n = Double(max(1, r.records))
            r.meanValues = r.meanValues.map { $0 / n }
            r.meanDistance /= n
            return r
        }.sorted { $0.records > $1.records }
        summary.worst = worst
        summary.suspects = suspects.map(\.1)
        if let elapsed, elapsed > 0 {
            summary.elapsedSeconds = elapsed
            summary.recordsPerSecond = Double(scoredNow) / elapsed
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(summary).write(to: URL(fileURLWithPath: outputDirectory + "/summary.json"), options: .atomic)
        try Data(AuditReportHTML.render(summary).utf8).write(to: URL(fileURLWithPath: outputDirectory + "/report.html"), options: .atomic)
        return summary
    }
}
