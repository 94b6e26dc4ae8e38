public import MLXEngine

/// Configuration of LoRA adapters, with Hugging Face PEFT's names and defaults.
public struct LoRAConfiguration: Sendable, Codable, Equatable {
    /// The rank r of the update B A.
    public var rank: Int
    /// The update is scaled by alpha / r.
    public var alpha: Float
    /// Dropout on the adapter's input during training.
    public var dropout: Float
    /// Names (last path component) of the linear layers to adapt, e.g. ["q_proj", "v_proj"].
    public var targetModules: [String]

    public init(rank: Int = 8, alpha: Float = 16, dropout: Float = 0, targetModules: [String] = ["q_proj", "v_proj"]) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targetModules = targetModules
    }

    public var scale: Float { alpha / Float(rank) }
}

/// A linear layer plus a trainable low-rank update: y = base(x) + (alpha/r) * B(A(dropout(x))).
///
/// Parameter names follow PEFT: `base_layer.weight`, `lora_A.weight` [r, in], `lora_B.weight`
/// [out, r]. A starts uniform (Kaiming-style) and B at zero, so a new adapter changes nothing.
public final class LoRALinear: Module, LinearLayer, @unchecked Sendable {
    @Child public var base: any LinearLayer
    @Child public var loraA: Linear
    @Child public var loraB: Linear
    public let dropout: Dropout
    public let scale: Float

    public init(base: any LinearLayer, rank: Int, alpha: Float, dropout: Float = 0, key: MLXArray? = nil) throws {
        guard rank > 0 else { throw MLXError.invalidArgument("LoRA rank must be positive, got \(rank)") }
        let bound = Float(1 / Double(base.inputDimensions).squareRoot())
        let a = try MLXRandom.uniform([rank, base.inputDimensions], low: -bound, high: bound, key: key)
        self._base = Child(wrappedValue: base, key: "base_layer")
        self._loraA = Child(wrappedValue: Linear(weight: a), key: "lora_A")
        self._loraB = Child(wrappedValue: Linear(weight: try MLXArray.zeros([base.outputDimensions, rank])), key: "lora_B")
        self.dropout = Dropout(dropout)
        self.scale = alpha / Float(rank)
        super.init()
        base.freeze()
    }

    public var inputDimensions: Int { base.inputDimensions }
    public var outputDimensions: Int { base.outputDimensions }

    public func callAsFunction(_ x: MLXArray) throws -> MLXArray {
        try base(x) + update(x)
    }

    /// The adapter's part of the output, (alpha/r) * B(A(dropout(x))): what a caller that computes
    /// the base product itself (fused with other layers' products) adds.
    public func update(_ x: MLXArray) throws -> MLXArray {
        try loraB(loraA(dropout(x))) * scale
    }

    /// The base layer with the update folded into its weight (quantised bases are dequantised).
    public func merged() throws -> Linear {
        let float: Linear
        if let q = base as? QuantizedLinear { float = try q.dequantized() } else if let l = base as? Linear { float = l } else {
            throw MLXError.invalidArgument("cannot merge LoRA into a \(type(of: base))")
        }
        let delta = try loraB.weight.matmul(loraA.weight) * scale
        return Linear(weight: try float.weight + delta, bias: float.bias)
    }
}

extension Module {
    /// Wraps every linear `@Child` whose name is in `configuration.targetModules` with a
    /// `LoRALinear`, freezes everything else, and returns the adapted paths.
    @discardableResult
    public func applyLoRA(_ configuration: LoRAConfiguration, seed: UInt64 = 0) throws -> [String] {
        freeze()
        var adapted: [String] = []
        var key = try MLXRandom.key(seed)
        for (path, module) in namedModules() {
            guard let name = path.split(separator: ".").last.map(String.init),
                  configuration.targetModules.contains(name),
                  let layer = module as? any LinearLayer, !(module is LoRALinear) else { continue }
            let keys = try MLXRandom.split(key)
            key = keys[0]
            let lora = try LoRALinear(base: layer, rank: configuration.rank, alpha: configuration.alpha, dropout: configuration.dropout, key: keys[1])
            try replace(child: path, with: lora)
            adapted.append(path)
        }
        guard !adapted.isEmpty else {
            throw MLXError.invalidArgument("no linear layer matches LoRA target modules \(configuration.targetModules)")
        }
        return adapted
    }

    /// Replaces every `LoRALinear` by its merged float layer.
    public func mergeLoRA() throws {
        for (path, module) in namedModules() {
            if let lora = module as? LoRALinear { try replace(child: path, with: try lora.merged()) }
        }
    }
}
