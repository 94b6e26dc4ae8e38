public import MLXEngine

/// The value of `loss(model)` and its gradients with respect to the model's trainable
/// parameters (keyed like `trainableParameters()`).
///
/// The parameters are swapped for traced copies while `loss` runs and restored afterwards,
/// also when `loss` throws.
public func valueAndGrad<M: Module>(_ model: M, _ loss: @escaping (M) throws -> MLXArray) throws -> (value: MLXArray, gradients: [String: MLXArray]) {
    let original = model.trainableParameters()
    defer { try? model.update(parameters: original) }
    return try MLXEngine.valueAndGrad(original) { traced in
        try model.update(parameters: traced)
        return try loss(model)
    }
}

extension Module {
    /// Saves all parameters to a safetensors file.
    public func save(safetensors path: String, metadata: [String: String] = [:]) throws {
        try ArrayIO.saveSafetensors(path, arrays: parameters(), metadata: metadata)
    }

    /// Loads parameters from a safetensors file; with `strict`, every parameter must be there.
    public func load(safetensors path: String, strict: Bool = true) throws {
        let (arrays, _) = try ArrayIO.loadSafetensors(path)
        try update(parameters: arrays, strict: strict)
    }
}

/// Losses used across trainers.
public enum Losses {
    /// Mean cross-entropy of `logits` [..., V] against integer `targets` [...]; positions where
    /// `mask` (same shape as targets, 1 = count) is 0 are ignored.
    public static func crossEntropy(logits: MLXArray, targets: MLXArray, mask: MLXArray? = nil) throws -> MLXArray {
        guard logits.ndim >= 1, Array(logits.shape.dropLast()) == targets.shape else {
            throw MLXError.invalidArgument("crossEntropy: logits \(logits.shape) need one target per row, got targets \(targets.shape)")
        }
        let picked = try Fast.logSoftmaxPicked(logits.reshaped(-1, logits.dim(-1)), targets: targets.reshaped(-1)).reshaped(targets.shape)
        guard let mask else { return try -picked.mean() }
        let m = try mask.asType(picked.dtype)
        return try -(picked * m).sum() / maximum(m.sum(), MLXArray(1))
    }

    /// Mean squared error.
    public static func meanSquaredError(_ prediction: MLXArray, _ target: MLXArray) throws -> MLXArray {
        try (prediction - target).square().mean()
    }
}
