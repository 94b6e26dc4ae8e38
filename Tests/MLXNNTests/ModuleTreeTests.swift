import Foundation
import MLXEngine
import MLXNN
import Testing

/// A small tree: a list of blocks, each with replaceable linear children.
final class Block: Module, @unchecked Sendable {
    @Child var q_proj: any LinearLayer
    @Child var v_proj: any LinearLayer
    let norm: RMSNorm

    init(_ d: Int, key: UInt64) throws {
        let keys = try MLXRandom.split(MLXRandom.key(key), count: 2)
        _q_proj = Child(wrappedValue: try Linear(d, d, bias: false, key: keys[0]))
        _v_proj = Child(wrappedValue: try Linear(d, d, bias: true, key: keys[1]))
        norm = try RMSNorm(d)
        super.init()
    }

    func callAsFunction(_ x: MLXArray) throws -> MLXArray {
        let h = try norm(x)
        return try x + q_proj(h) * v_proj(h).sigmoid()
    }
}

final class Tiny: Module, @unchecked Sendable {
    let layers: [Block]
    let head: Linear
    init(d: Int = 8, depth: Int = 2) throws {
        layers = try (0..<depth).map { try Block(d, key: UInt64($0)) }
        head = try Linear(d, 1, key: MLXRandom.key(99))
        super.init()
    }
    func callAsFunction(_ x: MLXArray) throws -> MLXArray {
        var h = x
        for l in layers { h = try l(h) }
        return try head(h)
    }
}

@Suite struct ModuleTreeTests {
    @Test func parameterNamesFollowTheTree() throws {
        let m = try Tiny()
        let names = Set(m.parameters().keys)
        #expect(names == [
            "layers.0.q_proj.weight", "layers.0.v_proj.weight", "layers.0.v_proj.bias", "layers.0.norm.weight",
            "layers.1.q_proj.weight", "layers.1.v_proj.weight", "layers.1.v_proj.bias", "layers.1.norm.weight",
            "head.weight", "head.bias",
        ])
        #expect(m.parameterCount() == 2 * (64 + 64 + 8 + 8) + 8 + 1)
    }

    @Test func updateRejectsUnknownNamesAndWrongShapes() throws {
        let m = try Tiny()
        #expect(throws: ModuleError.unknownParameters(["layers.0.k_proj.weight"])) {
            try m.update(parameters: ["layers.0.k_proj.weight": MLXArray.zeros([8, 8])])
        }
        #expect(throws: ModuleError.shapeMismatch(key: "head.weight", expected: [1, 8], got: [2, 8])) {
            try m.update(parameters: ["head.weight": MLXArray.zeros([2, 8])])
        }
        do {
            try m.update(parameters: ["head.bias": MLXArray.zeros([1])], strict: true)
            Issue.record("strict update with missing parameters must throw")
        } catch let error as ModuleError {
            guard case let .missingParameters(keys) = error else { Issue.record("wrong error \(error)"); return }
            #expect(keys.count == 9)
            #expect(error.description.contains("layers.0.q_proj.weight"))
        }
        try m.update(parameters: ["head.bias": MLXArray([5] as [Float])])
        #expect(try m.head.bias!.item(Float.self) == 5)
    }

    @Test func freezeAndUnfreeze() throws {
        let m = try Tiny()
        m.freeze()
        #expect(m.trainableParameters().isEmpty)
        m.unfreeze(keys: ["bias"])
        #expect(Set(m.trainableParameters().keys) == ["layers.0.v_proj.bias", "layers.1.v_proj.bias", "head.bias"])
    }

    @Test func replaceChecksTheDeclaredType() throws {
        let m = try Tiny()
        let replacement = Linear(weight: try MLXArray.zeros([8, 8]))
        try m.replace(child: "layers.1.q_proj", with: replacement)
        #expect(m.layers[1].q_proj === replacement)
        #expect(throws: ModuleError.unknownChild("layers.1.k_proj")) { try m.replace(child: "layers.1.k_proj", with: replacement) }
        #expect(throws: ModuleError.self) { try m.replace(child: "layers.1.q_proj", with: try RMSNorm(8)) }
    }

    @Test func moduleAtWalksDottedPaths() throws {
        let m = try Tiny()
        // Every path namedModules lists resolves to the same module.
        for (path, module) in m.namedModules() { #expect(m.module(at: path) === module, "\(path)") }
        #expect(m.module(at: "layers.1.q_proj") === m.layers[1].q_proj)
        for missing in ["layers.2", "layers.x.q_proj", "layers", "layers.0.nope", "head.weight", "nope", "layers..q_proj"] {
            #expect(m.module(at: missing) == nil, "\(missing)")
        }
    }

    @Test func saveAndLoadRoundTrip() throws {
        let a = try Tiny(), b = try Tiny()
        // Different weights first (b's head differs only by key 99 = same); perturb b.
        try b.update(parameters: b.parameters().mapValues { try $0 * 0 })
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("va-nn-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny.safetensors").path
        try a.save(safetensors: path)
        try b.load(safetensors: path)
        let x = try MLXRandom.normal([3, 8], key: MLXRandom.key(5))
        #expect(try a(x).asArray(Float.self) == b(x).asArray(Float.self))
    }

    @Test func trainingModeReachesTheWholeTree() throws {
        let m = try Tiny()
        m.train(false)
        #expect(m.namedModules().allSatisfy { !$0.1.training })
    }
}
