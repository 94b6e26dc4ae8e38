import Foundation
import ValueAlignCore
public import ValueSpace

/// The evaluator's data, read by path and split by prompt: FULCRA labelled dialogues (hard labels)
/// and answers scored by the FULCRA DeBERTa evaluator (soft targets, and the reference for
/// Pearson's r). The held-out side (`DatasetSplit.isHeldOut` on the prompt) is never trained on.
public struct EvaluatorData: Sendable {
    public var labelled: [FULCRAExample]
    public var scored: [ScoredAnswer]
    public var files: [DataFileRecord]
    public var fulcraReport: DatasetReport

    /// Where the project keeps the FULCRA files: `fulcra/` under the shared data root
    /// (`$VALUEALIGN_DATA`, or `../shared/data` beside the repository; see `SharedData`).
    public static var defaultDirectory: String { SharedData.defaultRoot + "/fulcra" }
    public static var defaultLabelledPath: String { "\(defaultDirectory)/trustworthy.jsonl" }
    public static var defaultScoredPaths: [String] {
        ["scored_gpt-4.jsonl", "scored_gpt-35-turbo.jsonl"].map { "\(defaultDirectory)/\($0)" }
    }

    /// Reads the files (scored ones in the order given).
    public static func load(labelled: String, scored: [String]) throws -> EvaluatorData {
        let (examples, report) = try FULCRADataset.load(labelled)
        var answers: [ScoredAnswer] = []
        var files = [DataFileRecord(name: URL(fileURLWithPath: labelled).lastPathComponent, fingerprint: try ModelFingerprint.of(path: labelled), trainingExamples: 0)]
        for path in scored {
            answers += try ScoredAnswers.load(path)
            files.append(DataFileRecord(name: URL(fileURLWithPath: path).lastPathComponent, fingerprint: try ModelFingerprint.of(path: path), trainingExamples: 0))
        }
        guard !examples.isEmpty else { throw EvaluatorError.data("\(labelled) has no usable labelled examples") }
        return EvaluatorData(labelled: examples, scored: answers, files: files, fulcraReport: report)
    }

    /// The training or held-out side of the labelled examples.
    public func labelled(heldOut: Bool, fraction: Double = 0.15, seed: UInt64 = 0) -> [FULCRAExample] {
        labelled.filter { DatasetSplit.isHeldOut($0.prompt, fraction: fraction, seed: seed) == heldOut }
    }

    /// The training or held-out side of the scored answers.
    public func scored(heldOut: Bool, fraction: Double = 0.15, seed: UInt64 = 0) -> [ScoredAnswer] {
        scored.filter { DatasetSplit.isHeldOut($0.prompt, fraction: fraction, seed: seed) == heldOut }
    }
}
