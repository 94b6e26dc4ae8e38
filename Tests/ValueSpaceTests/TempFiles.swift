import Foundation
import ValueAlignCore

/// A fresh file under the temporary directory holding `lines` joined by newlines.
func temporaryFile(_ lines: [String], suffix: String = ".jsonl") throws -> String {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("valuespace-\(UUID().uuidString)\(suffix)")
    try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
    return url.path
}

/// A JSON string literal for `s` (quotes and escapes included).
func jsonString(_ s: String) -> String {
    String(decoding: try! JSONEncoder().encode(s), as: UTF8.self)
}

/// One FULCRA-shaped line.
func fulcraLine(_ dialogue: String, _ labels: [String]) -> String {
    "{\"dialogue\": \(jsonString(dialogue)), \"value_items\": [], \"value_types\": [\(labels.map(jsonString).joined(separator: ", "))]}"
}

/// `count` uniform doubles in [low, high) from `seed` (the values `Fixtures.uniformValues` gives;
/// this target stays free of the engine).
func uniformValues(_ count: Int, seed: UInt64, low: Double = -1, high: Double = 1) -> [Double] {
    var g = SplitMix64(seed: seed &+ SplitMix64.increment)
    return (0..<count).map { _ in g.uniform(low, high) }
}

/// A file of the shared development data (`$VALUEALIGN_DATA` or `../shared/data` beside the
/// repository). A test that needs it fails when it is absent, with the error naming both.
func sharedFile(_ relative: String) throws -> String {
    try SharedData.file(relative)
}
