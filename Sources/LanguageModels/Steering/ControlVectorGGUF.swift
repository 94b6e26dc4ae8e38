import Foundation

/// llama.cpp's control-vector files (what `llama-cvector-generator` and repeng's `export_gguf`
/// write, and `llama-cli --control-vector[-scaled]` reads): a GGUF file with
/// `general.architecture = "controlvector"`, `controlvector.model_hint` (the model's
/// architecture) and `controlvector.layer_count`, and one F32 tensor `direction.N` [n_embd] per
/// steered layer, which llama.cpp adds to the output of block N (0-based, N >= 1).
///
/// In ValueAlign's numbering (`ResidualSteering`) `direction.N` is layer N+1, so layer 1 cannot be
/// written (llama.cpp rejects `direction.0`), and every layer of a file read back is N+1.
public enum ControlVectorGGUF {
    /// Writes the vector's active layers, each direction times `multiplier` (default: the
    /// vector's), so that llama.cpp's `--control-vector FILE` (scale 1) steers as `--steer FILE`
    /// does here. `modelHint` is the base model's architecture ("llama").
    public static func write(_ vector: SteeringVector, to path: String, modelHint: String, multiplier: Float? = nil) throws {
        try vector.validate(path: path)
        if vector.layers.contains(1) {
            throw LanguageModelError.steering(path: path, message: "layer 1 (the output of the first block) has no place in a llama.cpp control vector (direction.0 is invalid there); apply the vector from layer 2 on")
        }
        let m = multiplier ?? vector.multiplier
        let layers = vector.layers
        let tensors = layers.map { GGUFLayout.Tensor(name: "direction.\($0 - 1)", dimensions: [vector.hiddenSize], type: .f32) }
        let layout = GGUFLayout(entries: [
            .string("general.architecture", "controlvector"),
            .string("controlvector.model_hint", modelHint),
            GGUFLayout.Entry(key: "controlvector.layer_count", type: 5, value: GGUFLayout.bytes(of: Int32(layers.count))),
        ], tensors: tensors)
        try layout.write(to: path) { tensor in
            let layer = Int(tensor.name.dropFirst("direction.".count))! + 1
            return try GGMLQuantization.encode(vector.directions[layer]!.map { $0 * m }, as: .f32)
        }
    }

    /// Reads a control vector: every `direction.N` tensor becomes layer N+1, all applied, with
    /// multiplier 1. It records no base model, so it is checked against a model by width and
    /// layer range only.
    public static func read(_ path: String) throws -> SteeringVector {
        let (layout, file): (GGUFLayout, Data)
        do { (layout, file) = try GGUFLayout.read(path) } catch {
            throw LanguageModelError.steering(path: path, message: "not a readable GGUF file (\(error))")
        }
        if let arch = layout["general.architecture"]?.stringValue, arch != "controlvector" {
            throw LanguageModelError.steering(path: path, message: "a GGUF of architecture '\(arch)', not a control vector (controlvector)")
        }
        var directions: [Int: [Float]] = [:]
        var width: Int?
        for t in layout.tensors {
            guard t.name.hasPrefix("direction."), let n = Int(t.name.dropFirst("direction.".count)), n >= 1 else {
                throw LanguageModelError.steering(path: path, message: "unexpected tensor '\(t.name)' (expected direction.N with N >= 1)")
            }
            guard t.type == .f32, t.dimensions.count == 1 else {
                throw LanguageModelError.steering(path: path, message: "tensor '\(t.name)' is \(t.type.name) \(t.dimensions), expected one-dimensional F32")
            }
            if let width, width != t.dimensions[0] {
                throw LanguageModelError.steering(path: path, message: "tensor '\(t.name)' has \(t.dimensions[0]) values, others \(width)")
            }
            width = t.dimensions[0]
            let values = try GGMLQuantization.decode(layout.bytes(of: t, in: file), as: .f32, name: t.name)
            // Several tensors for one layer add up, as llama.cpp adds them.
            directions[n + 1] = directions[n + 1].map { zip($0, values).map(+) } ?? values
        }
        guard let width else { throw LanguageModelError.steering(path: path, message: "no direction tensors in the file") }
        var notes: [String: String] = [:]
        if let hint = layout["controlvector.model_hint"]?.stringValue { notes["model_hint"] = hint }
        let vector = SteeringVector(directions: directions, layers: directions.keys.sorted(), multiplier: 1, hiddenSize: width, modelFingerprint: nil,
                                    name: URL(fileURLWithPath: path).lastPathComponent, method: "imported", notes: notes)
        try vector.validate(path: path)
        return vector
    }
}
