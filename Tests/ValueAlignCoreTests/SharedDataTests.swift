import Foundation
import Testing
import ValueAlignCore

@Suite struct SharedDataTests {
    @Test func environmentVariableNamesTheRoot() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shared-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("fulcra"), withIntermediateDirectories: true)
        try Data("{}\n".utf8).write(to: dir.appendingPathComponent("fulcra/x.jsonl"))
        defer { try? FileManager.default.removeItem(at: dir) }
        let env = [SharedData.environmentVariable: dir.path]
        #expect(try SharedData.root(environment: env) == dir.path)
        #expect(try SharedData.file("fulcra/x.jsonl", environment: env) == dir.path + "/fulcra/x.jsonl")
        // A missing file names the file and the root it was looked for in.
        #expect { try SharedData.file("fulcra/missing.jsonl", environment: env) } throws: { error in
            let text = "\(error)"
            return text.contains("fulcra/missing.jsonl") && text.contains(dir.path) && text.contains("VALUEALIGN_DATA")
        }
    }

    @Test func aWrongEnvironmentVariableIsAnErrorNotAFallback() {
        #expect { try SharedData.root(environment: [SharedData.environmentVariable: "/nonexistent/valuealign-data"]) } throws: { error in
            "\(error)".contains("/nonexistent/valuealign-data") && "\(error)".contains("VALUEALIGN_DATA")
        }
    }

    /// Without the variable the root is ../shared/data beside the repository: this checkout's
    /// data, which the project's tests read.
    @Test func defaultRootIsBesideTheRepository() throws {
        let root = try SharedData.root(environment: [:])
        #expect(root.hasSuffix("/shared/data"))
        #expect(FileManager.default.fileExists(atPath: root + "/README.md"))
    }
}

@Suite struct JSONLinesTests {
    struct Row: Codable, Equatable { var a: Int }

    @Test func roundTripAndErrorsNameTheLine() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("jl-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try JSONLines.append(Row(a: 1), to: path)
        try JSONLines.append(Row(a: 2), to: path)
        #expect(try JSONLines.read(Row.self, from: path).map(\.value) == [Row(a: 1), Row(a: 2)])
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("\n{\"b\": 3}\n".utf8))
        try handle.close()
        #expect { try JSONLines.read(Row.self, from: path) } throws: { error in
            guard let e = error as? JSONLinesError else { return false }
            return e.line == 4 && e.message.contains("'a'")
        }
        #expect(throws: JSONLinesError.self) { try JSONLines.read(Row.self, from: path + ".absent") }
    }
}
