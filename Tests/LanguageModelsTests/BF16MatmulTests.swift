import Foundation
@testable import LanguageModels
import MLXEngine
import MLXNN
import Testing
import ValueAlignTesting

/// `MatmulPrecision.bfloat16`: a LoRA model's frozen checkpoint weights run their many-row matmuls
/// on AMX tiles; the adapter, unfrozen weights and few-row (decode) matmuls stay float32.
@Suite("bf16 matmuls for frozen checkpoint weights", .enabled(if: Fast.amxAvailable, "this CPU (or VM) has no usable AMX-BF16"))
struct BF16MatmulModelTests {
    let checkpoints = HybridWeightTests()

    func adapted(bias: Bool) throws -> any CausalLanguageModel {
        let model = try checkpoints.quantizedCheckpoint(bias: bias).makeModel(precision: .hybrid)
        try model.applyLoRA(LoRAConfiguration(rank: 4, alpha: 8, targetModules: ["q_proj", "v_proj", "down_proj"]), seed: 3)
        var update: [String: MLXArray] = [:]
        for (name, p) in model.trainableParameters() where name.contains("lora_B") { update[name] = try MLXArray.ones(p.shape) * 0.05 }
        try model.update(parameters: update)
        return model
    }

    static let tokens: [Int32] = (0..<80).map { Int32(($0 * 37 + 11) % 250 + 5) }

    /// A fixed random projection of the logits over 2 x 40 positions (80 rows: past the few-row
    /// kernel); linear in the logits, so gradient differences come from the matmuls alone (a
    /// softmax of a random model's large logits would amplify them).
    func loss(_ model: any CausalLanguageModel) throws -> MLXArray {
        let ids = try MLXArray(Self.tokens, shape: [2, 40])
        let logits = try model(ids)
        return try (logits * Fixtures.uniform(logits.shape, seed: 17)).mean()
    }

    @Test("logits and LoRA gradients agree with float32 to bf16 accuracy; float32 again is exact", arguments: [false, true])
    func agreesWithFloat32(bias: Bool) throws {
        let reference = try adapted(bias: bias), model = try adapted(bias: bias)
        let ids = try MLXArray(Self.tokens, shape: [2, 40])
        let exact = try reference(ids)
        #expect(model.setMatmulPrecision(.bfloat16) == .float32)
        let bf16 = try model(ids)
        let difference = try maxAbsDifference(bf16, exact)
        #expect(difference > 0, "the bf16 path did not run")
        // bf16 keeps 8 significant bits (0.4%); through the layers of a random model the logits move
        // by about 1% of their range.
        let scale = try exact.abs().max().item(Float.self)
        #expect(difference < 0.03 * Double(scale), "logits moved by \(difference) (largest logit \(scale))")

        let keys = reference.trainableParameters().keys.sorted()
        func gradients(_ m: any CausalLanguageModel) throws -> [MLXArray] {
            let original = m.trainableParameters()
            defer { try? m.update(parameters: original) }
            return try valueAndGrad(keys.map { original[$0]! }) { arrays in
                try m.update(parameters: Dictionary(uniqueKeysWithValues: zip(keys, arrays)))
                return [try loss(m)]
            }.gradients
        }
        let g32 = try gradients(reference), g16 = try gradients(model)
        for (key, (a, b)) in zip(keys, zip(g32, g16)) {
            let norm = try a.square().sum().sqrt().item(Float.self)
            let error = try (a - b).square().sum().sqrt().item(Float.self)
            // Each bf16 rounding is 0.4%; compounded over the forward and backward passes of the
            // random model the LoRA gradients move by 2-4% (a wrong VJP would move them by ~100%).
            #expect(error <= 0.06 * norm + 1e-6, "\(key): |g16 - g32| = \(error), |g32| = \(norm)")
        }
        #expect(model.setMatmulPrecision(.float32) == .bfloat16)
        #expect(try maxAbsDifference(try model(ids), exact) == 0)
    }

    @Test("fused q/k/v and gate/up products equal the per-layer bf16 products, forward and LoRA gradients", arguments: [false, true])
    func fusedProjections(bias: Bool) throws {
        let model = try adapted(bias: bias)
        model.setMatmulPrecision(.bfloat16)
        let keys = model.trainableParameters().keys.sorted()
        func run(fused: Bool) throws -> (logits: MLXArray, gradients: [MLXArray]) {
            FusedProjection.bf16Enabled.store(fused, ordering: .relaxed)
            defer { FusedProjection.bf16Enabled.store(true, ordering: .relaxed) }
            let logits = try model(try MLXArray(Self.tokens, shape: [2, 40]))
            try logits.eval()
            let original = model.trainableParameters()
            defer { try? model.update(parameters: original) }
            let gradients = try valueAndGrad(keys.map { original[$0]! }) { arrays in
                try model.update(parameters: Dictionary(uniqueKeysWithValues: zip(keys, arrays)))
                return [try loss(model)]
            }.gradients
            try eval(gradients)
            return (logits, gradients)
        }
        let separate = try run(fused: false)
        let holders = model.namedModules().compactMap { $0.1 as? any FusedProjectionHolder }.flatMap(\.fusedProjections)
        #expect(!holders.isEmpty && holders.allSatisfy { !$0.hasBF16Pack }, "the per-layer run made fused packs")
        let fused = try run(fused: true)
        #expect(holders.allSatisfy { $0.hasBF16Pack }, "the fused path did not run for every q/k/v and gate/up")
        // Each output element is the same sum in the same order: the forward is unchanged.
        #expect(try maxAbsDifference(fused.logits, separate.logits) == 0)
        // The input gradient sums q, k and v's parts in one product instead of three: rounding only.
        for (key, (a, b)) in zip(keys, zip(separate.gradients, fused.gradients)) {
            let norm = try a.square().sum().sqrt().item(Float.self)
            let error = try (a - b).square().sum().sqrt().item(Float.self)
            #expect(error <= 1e-4 * norm + 1e-7, "\(key): |fused - separate| = \(error), |separate| = \(norm)")
        }
        // Back to float32: the packs go.
        model.setMatmulPrecision(.float32)
        #expect(holders.allSatisfy { !$0.hasBF16Pack })
    }

    @Test("unfrozen weights stay float32 (their gradients need the float32 graph)")
    func unfrozenWeightsStayFloat32() throws {
        let checkpoint = try checkpoints.quantizedCheckpoint(bias: false)
        let reference = try checkpoint.makeModel(precision: .hybrid), model = try checkpoint.makeModel(precision: .hybrid)
        model.unfreeze()  // a loaded model starts frozen
        model.setMatmulPrecision(.bfloat16)
        let ids = try MLXArray(Self.tokens, shape: [2, 40])
        #expect(try maxAbsDifference(try model(ids), try reference(ids)) == 0)
    }

    @Test("few-row steps (decode) keep the packed float32 kernel")
    func fewRowsUnchanged() throws {
        let reference = try adapted(bias: false), model = try adapted(bias: false)
        model.setMatmulPrecision(.bfloat16)
        let ids = try MLXArray(Array(Self.tokens[0..<8]), shape: [1, 8])
        #expect(try maxAbsDifference(try model(ids), try reference(ids)) == 0)
    }
}
