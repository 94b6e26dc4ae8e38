import Foundation

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

/// Where the shared development data lives; tests that read it are skipped when it is absent.
let sharedData = "/work/shared/data"
func sharedFile(_ relative: String) -> String? {
    let path = "\(sharedData)/\(relative)"
    return FileManager.default.fileExists(atPath: path) ? path : nil
}
