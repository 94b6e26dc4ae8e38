import Foundation
import MLXEngine
import Testing
import ValueAlignTesting

/// MLX's counter-based random generator through explicit keys (the global generator is shared by
/// tests running in parallel, so these tests only use keys).
@Suite("Random")
struct RandomTests {
    @Test("the same key gives identical normals; different keys differ")
    func keysAreDeterministic() throws {
        let a = try MLXRandom.normal([64], key: MLXRandom.key(42)).asArray(Float.self)
        let b = try MLXRandom.normal([64], key: MLXRandom.key(42)).asArray(Float.self)
        let c = try MLXRandom.normal([64], key: MLXRandom.key(43)).asArray(Float.self)
        #expect(a == b)
        #expect(a != c)
        #expect(zip(a, c).filter { $0 == $1 }.count < 4, "different keys should give unrelated samples")
    }

    @Test("split keys are distinct and reproducible")
    func split() throws {
        let key = try MLXRandom.key(7)
        let keys = try MLXRandom.split(key, count: 3)
        #expect(keys.count == 3)
        let samples = try keys.map { try MLXRandom.uniform([16], key: $0).asArray(Float.self) }
        #expect(samples[0] != samples[1])
        #expect(samples[1] != samples[2])
        let again = try MLXRandom.split(MLXRandom.key(7), count: 3)
        #expect(try MLXRandom.uniform([16], key: again[2]).asArray(Float.self) == samples[2])
    }

    @Test("seeding the global generator makes draws repeatable")
    func globalSeed() throws {
        // The global generator is shared, so this only checks that a seed is accepted and that
        // draws are finite and shaped; repeatability is checked with keys above.
        try MLXRandom.seed(123)
        let x = try MLXRandom.normal([2, 3])
        #expect(x.shape == [2, 3])
        #expect(try x.asArray(Float.self).allSatisfy { $0.isFinite })
    }

    @Test("uniform samples lie in [low, high) and fill it", arguments: [(Float(0), Float(1)), (-3, -2), (-0.5, 10)])
    func uniformRange(_ low: Float, _ high: Float) throws {
        let x = try MLXRandom.uniform([20_000], low: low, high: high, key: MLXRandom.key(3)).asArray(Float.self)
        #expect(x.allSatisfy { $0 >= low && $0 < high })
        let span = high - low
        #expect(x.min()! < low + 0.01 * span)
        #expect(x.max()! > high - 0.01 * span)
        let mean = x.reduce(0, +) / Float(x.count)
        #expect(Swift.abs(mean - (low + high) / 2) < 0.02 * span)
    }

    @Test("100k normals have the requested mean and standard deviation")
    func normalMoments() throws {
        for (mean, std) in [(Float(0), Float(1)), (2.5, 0.5)] {
            let x = try MLXRandom.normal([100_000], mean: mean, std: std, key: MLXRandom.key(2024))
            let m = try x.mean().item(Double.self)
            let s = try x.variance().sqrt().item(Double.self)
            // Standard error of the mean is std/316; allow ~6 of them.
            #expect(Swift.abs(m - Double(mean)) < 0.02 * Double(std), "mean \(m)")
            #expect(Swift.abs(s - Double(std)) < 0.02 * Double(std), "std \(s)")
            // About 68.3% within one standard deviation.
            let within = try ((x - mean).abs() .< std).asType(.float32).mean().item(Double.self)
            #expect(Swift.abs(within - 0.6827) < 0.01, "fraction within 1 std: \(within)")
        }
    }

    @Test("normal samples in float16 and bfloat16 come out in that dtype", arguments: [DType.float16, .bfloat16])
    func normalDtypes(_ dtype: DType) throws {
        let x = try MLXRandom.normal([8], dtype: dtype, key: MLXRandom.key(1))
        #expect(x.dtype == dtype)
        #expect(try x.asArray(Float.self).allSatisfy { $0.isFinite })
    }

    @Test("categorical picks the class whose logit dominates, row by row")
    func categoricalOneHot() throws {
        let classes = [3, 0, 4, 1]
        var logits = [Float](repeating: -30, count: 4 * 5)
        for (row, c) in classes.enumerated() { logits[row * 5 + c] = 30 }
        let x = try MLXArray(logits, shape: [4, 5])
        for seed in 0..<5 as Range<UInt64> {
            let picks = try MLXRandom.categorical(x, key: MLXRandom.key(seed))
            #expect(picks.shape == [4])
            #expect(try picks.asArray(Int32.self).map(Int.init) == classes)
        }
    }

    @Test("categorical frequencies follow the softmax probabilities")
    func categoricalFrequencies() throws {
        let p: [Double] = [0.1, 0.2, 0.7]
        let logits = try MLXArray(p.map { Float(Foundation.log($0)) }, shape: [1, 3]).broadcast(to: [20_000, 3])
        let picks = try MLXRandom.categorical(logits, key: MLXRandom.key(9)).asArray(Int32.self)
        for c in 0..<3 {
            let freq = Double(picks.filter { $0 == c }.count) / Double(picks.count)
            #expect(Swift.abs(freq - p[c]) < 0.015, "class \(c): \(freq)")
        }
    }

    @Test("randint and bernoulli stay in range")
    func randintBernoulli() throws {
        let r = try MLXRandom.randint(-2, 3, shape: [1000], key: MLXRandom.key(5)).asArray(Int32.self)
        #expect(Set(r) == Set([-2, -1, 0, 1, 2]))
        let b = try MLXRandom.bernoulli(0.25, shape: [20_000], key: MLXRandom.key(6))
        #expect(b.dtype == .bool)
        let rate = try b.asType(.float32).mean().item(Double.self)
        #expect(Swift.abs(rate - 0.25) < 0.015)
    }
}
