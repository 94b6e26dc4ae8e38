import Foundation
import MLXEngine
import Testing
import ValueAlignTesting

/// Misuse must throw an `MLXError` with a message a person can act on, never crash the process.
@Suite("Errors")
struct ErrorTests {
    /// Expects `body` to throw an MLXError whose description contains every one of `fragments`.
    func expectMessage(
        _ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
    ) {
        do {
            try body()
            Issue.record("expected an MLXError containing \(fragments)", sourceLocation: sourceLocation)
        } catch let error as MLXError {
            for fragment in fragments {
                #expect(error.description.contains(fragment), "message \"\(error.description)\" lacks \"\(fragment)\"", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("expected an MLXError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("matmul of 3x3 by 4x4 names the op and both shapes")
    func matmulShapes() throws {
        let a = try MLXArray.ones([3, 3]), b = try MLXArray.ones([4, 4])
        expectMessage(["matmul", "(3,3)", "(4,4)"]) { _ = try a.matmul(b) }
        // And the thrown value is the operationFailed case.
        let error = #expect(throws: MLXError.self) { _ = try a.matmul(b) }
        if case let .operationFailed(operation, _)? = error {
            #expect(operation == "matmul")
        } else {
            Issue.record("expected .operationFailed, got \(String(describing: error))")
        }
    }

    @Test("adding incompatible shapes names both shapes")
    func broadcastShapes() throws {
        let a = try MLXArray.ones([2, 3]), b = try MLXArray.ones([4])
        expectMessage(["add", "(2,3)", "(4)"]) { _ = try a + b }
        expectMessage(["(2,3)", "(4)"]) { _ = try a .< b }
    }

    @Test("reshape to a wrong size names the sizes")
    func reshapeSize() throws {
        let a = try MLXArray.ones([2, 3])
        expectMessage(["reshape", "6", "(4"]) { _ = try a.reshaped(4, 2) }
    }

    @Test("an array whose shape does not match its values")
    func shapeMismatch() {
        expectMessage(["[2, 2]", "3"]) { _ = try MLXArray([1, 2, 3] as [Float], shape: [2, 2]) }
        expectMessage(["[-1, 3]"]) { _ = try MLXArray([1, 2, 3] as [Float], shape: [-1, 3]) }
    }

    @Test("index out of bounds names the index, axis and size")
    func indexOutOfBounds() throws {
        let a = try MLXArray.ones([3, 4])
        expectMessage(["out of bounds", "5", "3"]) { _ = try a[5] }
        expectMessage(["out of bounds", "-5", "size 4"]) { _ = try a[0, -5] }
        expectMessage(["too many indices", "3", "2"]) { _ = try a[0, 0, 0] }
        expectMessage(["step"]) { _ = try a[ArrayIndex.stride(nil, nil, 0)] }
        expectMessage(["ellipsis"]) { _ = try a[ArrayIndex.ellipsis, ArrayIndex.ellipsis] }
    }

    @Test("a wrong argnum names it and the input count")
    func wrongArgnum() throws {
        let x = try MLXArray.ones([2])
        expectMessage(["argnum", "1", "1 input"]) { _ = try valueAndGrad([x], argnums: [1]) { [try $0[0].sum()] } }
        expectMessage(["argnum", "-1"]) { _ = try valueAndGrad([x], argnums: [-1]) { [try $0[0].sum()] } }
    }

    @Test("item() of a many-element array, concatenating mismatched shapes, a bad pad")
    func otherMisuse() throws {
        expectMessage(["item", "[2]"]) { _ = try MLXArray.ones([2]).item(Float.self) }
        expectMessage(["concatenate"]) { _ = try concatenated([MLXArray.ones([2, 2]), MLXArray.ones([3, 3])]) }
        expectMessage(["pad", "2"]) { _ = try MLXArray.ones([2, 2]).padded(low: [1], high: [1]) }
        expectMessage(["split"]) { _ = try MLXArray.ones([5]).split(parts: 2) }
        expectMessage(["slice"]) { _ = try MLXArray.ones([2]).updatingSlice(start: [0, 0], stop: [1, 1], with: MLXArray.ones([1])) }
        expectMessage(["blasSgemm"]) { var c = [Float](repeating: 0, count: 3); try Engine.blasSgemm(m: 2, n: 2, k: 2, a: [1, 2, 3, 4], b: [1, 2, 3, 4], c: &c) }
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlxengine-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("loading a missing safetensors file names the path")
    func missingSafetensors() {
        let path = "/nonexistent/dir/weights-\(UUID().uuidString).safetensors"
        expectMessage([path]) { _ = try ArrayIO.loadSafetensors(path) }
        let error = #expect(throws: MLXError.self) { _ = try ArrayIO.loadSafetensors(path) }
        if case let .io(p, _)? = error { #expect(p == path) } else { Issue.record("expected .io, got \(String(describing: error))") }
    }

    @Test("loading a truncated safetensors file throws and names the path", arguments: [0.5, 0.95, 0.02])
    func truncatedSafetensors(_ fraction: Double) throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("model.safetensors").path
        try ArrayIO.saveSafetensors(path, arrays: [
            "a": try Fixtures.normal([64, 64], seed: 1),
            "b": try Fixtures.normal([128], seed: 2),
        ])
        // Sanity: the whole file loads.
        #expect(try ArrayIO.loadSafetensors(path).arrays.count == 2)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(Double(size) * fraction))
        try handle.close()
        expectMessage([path]) { _ = try ArrayIO.loadSafetensors(path) }
    }

    @Test("saving safetensors to an unwritable path names the path")
    func unwritable() throws {
        let path = "/nonexistent/dir/out.safetensors"
        expectMessage([path]) { try ArrayIO.saveSafetensors(path, arrays: ["a": MLXArray.ones([2])]) }
    }

    @Test("loading a missing or garbage GGUF file throws, naming the path")
    func badGGUF() throws {
        let missing = "/nonexistent/\(UUID().uuidString).gguf"
        expectMessage([missing]) { _ = try ArrayIO.loadGGUF(missing) }

        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let garbage = dir.appendingPathComponent("garbage.gguf").path
        var bytes = Array("this is not a GGUF file at all".utf8)
        bytes += Fixtures.uniformValues(4096, seed: 5, low: 0, high: 255).map { UInt8($0) }
        #expect(FileManager.default.createFile(atPath: garbage, contents: Data(bytes)))
        expectMessage([garbage]) { _ = try ArrayIO.loadGGUF(garbage) }

        // A file with a valid magic number and a truncated header.
        let truncated = dir.appendingPathComponent("truncated.gguf").path
        #expect(FileManager.default.createFile(atPath: truncated, contents: Data(Array("GGUF".utf8) + [3, 0, 0, 0, 9])))
        expectMessage([truncated]) { _ = try ArrayIO.loadGGUF(truncated) }
        let empty = dir.appendingPathComponent("empty.gguf").path
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        expectMessage([empty]) { _ = try ArrayIO.loadGGUF(empty) }
    }

    @Test("making the GPU the default throws on the CPU build", .enabled(if: !Device.isCUDABuild))
    func gpuOnCPUBuild() throws {
        #expect(Device.isAvailable(.cpu))
        #expect(!Device.isAvailable(.gpu))
        expectMessage(["gpu"]) { try Device.setDefault(.gpu) }
        #expect(Device.default == .cpu)
        try Device.setDefault(.cpu)
        #expect(Device.default == .cpu)
    }

    @Test("device names parse")
    func deviceParsing() {
        #expect(Device("cpu") == .cpu)
        #expect(Device("GPU:1") == Device(kind: .gpu, index: 1))
        #expect(Device("cuda") == .gpu)
        #expect(Device("tpu") == nil)
        #expect(Device("gpu:-1") == nil)
        #expect(Device("gpu:1:2") == nil)
        #expect(Device.gpu.description == "gpu:0")
    }
}
