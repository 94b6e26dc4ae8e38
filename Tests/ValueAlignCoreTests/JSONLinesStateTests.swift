import Foundation
import Testing
import ValueAlignCore

@Suite struct JSONLinesStateTests {
    struct Row: Codable, Equatable { var id: Int }

    func file(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("state-\(UUID().uuidString).jsonl")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    /// A write cut short (no newline, not JSON) is dropped and cut from the file; the run goes on
    /// appending to a clean file.
    @Test func aTornLastLineIsDroppedAndCut() throws {
        let path = try file("{\"id\":1}\n{\"id\":2}\n{\"id\":")
        #expect(throws: JSONLinesError.self) { try JSONLines.read(Row.self, from: path) }
        #expect(try JSONLines.readState(Row.self, from: path).map(\.value) == [Row(id: 1), Row(id: 2)])
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "{\"id\":1}\n{\"id\":2}\n")
        try JSONLines.append(Row(id: 3), to: path)
        #expect(try JSONLines.read(Row.self, from: path).map(\.value.id) == [1, 2, 3])
    }

    /// A complete record without its newline is kept, and the next record starts on its own line.
    @Test func aCompleteLastLineWithoutNewlineIsKept() throws {
        let path = try file("{\"id\":1}\n{\"id\":2}")
        #expect(try JSONLines.readState(Row.self, from: path).map(\.value.id) == [1, 2])
        try JSONLines.append(Row(id: 3), to: path)
        #expect(try JSONLines.read(Row.self, from: path).map(\.value.id) == [1, 2, 3])
    }

    /// Damage anywhere but at the torn end is an error naming the line; a missing file is empty.
    @Test func otherDamageIsStillAnError() throws {
        let path = try file("{\"id\":1}\nnot json\n{\"id\":3}\n")
        #expect { try JSONLines.readState(Row.self, from: path) } throws: { "\($0)".contains(":2") }
        #expect(try JSONLines.readState(Row.self, from: "/nonexistent/\(UUID().uuidString).jsonl").isEmpty)
        let torn = try file("{\"id\":")
        #expect(try JSONLines.readState(Row.self, from: torn).isEmpty)
        #expect(try Data(contentsOf: URL(fileURLWithPath: torn)).isEmpty)
    }
}
