import MLXEngine
import MLXNN
import Testing

/// The README's examples, verbatim in substance, so they cannot drift from the API.
@Suite struct ReadmeExampleTests {
    @Test func arraysAndErrors() throws {
        let x = try MLXArray([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        let w = try MLXRandom.normal([3, 4], key: MLXRandom.key(0))
        let y = try (x.matmul(w) + 1).sigmoid().sum(axis: 1)
        #expect(y.shape == [2])
        do {
            _ = try x.matmul(x)
            Issue.record("matmul of [2,3] by [2,3] must throw")
        } catch {
            #expect("\(error)".contains("matmul"))
            #expect("\(error)".contains("(2,3)"))
        }
    }

    @Test func oneGradientStep() throws {
        let model = try Linear(3, 1, key: MLXRandom.key(0))
        let optimizer = AdamW(learningRate: 1e-2)
        let x = try MLXRandom.normal([64, 3], key: MLXRandom.key(1))
        let target = try x.matmul(MLXArray([0.5, -1, 2] as [Float], shape: [3, 1]))
        var losses: [Float] = []
        for _ in 0..<20 {
            let (loss, gradients) = try valueAndGrad(model) { m in
                try Losses.meanSquaredError(m(x), target)
            }
            try optimizer.update(model, gradients: gradients)
            losses.append(try loss.item(Float.self))
        }
        #expect(losses.last! < losses.first!)
    }
}
