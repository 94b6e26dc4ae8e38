/// ggml tensor types a GGUF export meets: the ones it can write (F32, F16, BF16, Q8_0, Q4_0,
/// Q4_1, the types MLX reads) and the k-quants it can only copy verbatim.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8
    case q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, bf16 = 30

    public var name: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"
        case .q2_k: "Q2_K"
        case .q3_k: "Q3_K"
        case .q4_k: "Q4_K"
        case .q5_k: "Q5_K"
        case .q6_k: "Q6_K"
        case .bf16: "BF16"
        }
    }

    /// Elements per block and bytes per block (ggml's type traits).
    var block: (elements: Int, bytes: Int) {
        switch self {
        case .f32: (1, 4)
        case .f16, .bf16: (1, 2)
        case .q4_0: (32, 18)
        case .q4_1: (32, 20)
        case .q5_0: (32, 22)
        case .q5_1: (32, 24)
        case .q8_0: (32, 34)
        case .q2_k: (256, 84)
        case .q3_k: (256, 110)
        case .q4_k: (256, 144)
        case .q5_k: (256, 176)
        case .q6_k: (256, 210)
        }
    }

    public var blockSize: Int { block.elements }

    public func byteCount(elements: Int) -> Int { elements / block.elements * block.bytes }

    /// Whether `GGMLQuantization.encode` can write this type.
    public var isWritable: Bool { [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1].contains(self) }

    /// llama.cpp's `general.file_type` for a file mostly of this type.
    var fileType: UInt32? {
        switch self {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q4_1: 3
        case .q8_0: 7
        case .bf16: 32
        default: nil
        }
    }
}

/// ggml's reference encoders (ggml-quants.c `quantize_row_*_ref`, ggml's fp16/bf16 conversion),
/// reproduced bit for bit so an exported tensor is what llama.cpp's own quantizer would write.
/// Rows are `values` in row-major order; each row's length must be a multiple of the block.
public enum GGMLQuantization {
    public static func encode(_ values: [Float], as type: GGMLType) throws(LanguageModelError) -> [UInt8] {
        guard values.count % type.blockSize == 0 else {
            throw .invalidParameter(field: "export", message: "\(values.count) values are not whole \(type.name) blocks of \(type.blockSize)")
        }
        var out = [UInt8](repeating: 0, count: type.byteCount(elements: values.count))
        values.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                switch type {
                case .f32:
                    for i in 0..<x.count { store(x[i].bitPattern, y, i * 4) }
                case .f16:
                    for i in 0..<x.count { store(Float16(x[i]).bitPattern, y, i * 2) }
                case .bf16:
                    for i in 0..<x.count { store(bfloat16(x[i]), y, i * 2) }
                case .q8_0: q8_0(x, y)
                case .q4_0: q4_0(x, y)
                case .q4_1: q4_1(x, y)
                default: break
                }
            }
        }
        guard type.isWritable else {
            throw .invalidParameter(field: "export", message: "cannot write \(type.name) tensors (writable: F32, F16, BF16, Q8_0, Q4_0, Q4_1)")
        }
        return out
    }

    @inline(__always)
    static func store<T: FixedWidthInteger>(_ v: T, _ y: UnsafeMutableBufferPointer<UInt8>, _ at: Int) {
        withUnsafeBytes(of: v.littleEndian) { b in for k in 0..<b.count { y[at + k] = b[k] } }
    }

    /// ggml_compute_fp32_to_bf16: round to nearest even; NaN stays a quiet NaN.
    static func bfloat16(_ f: Float) -> UInt16 {
        let u = f.bitPattern
        if f.isNaN { return UInt16(truncatingIfNeeded: (u >> 16) | 64) }
        return UInt16(truncatingIfNeeded: (u &+ (0x7FFF &+ ((u >> 16) & 1))) >> 16)
    }

    /// quantize_row_q8_0_ref: d = max|x| / 127, q = roundf(x / d).
    static func q8_0(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<UInt8>) {
        for b in 0..<(x.count / 32) {
            let base = b * 32, o = b * 34
            var amax: Float = 0
            for j in 0..<32 { amax = max(amax, abs(x[base + j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            store(Float16(d).bitPattern, y, o)
            for j in 0..<32 {
                let q = Int8((x[base + j] * id).rounded(.toNearestOrAwayFromZero))
                y[o + 2 + j] = UInt8(bitPattern: q)
            }
        }
    }

    /// quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8, q = min(15, (int8)(x/d + 8.5)).
    static func q4_0(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<UInt8>) {
        for b in 0..<(x.count / 32) {
            let base = b * 32, o = b * 18
            var amax: Float = 0, mx: Float = 0
            for j in 0..<32 where abs(x[base + j]) > amax {
                amax = abs(x[base + j])
                mx = x[base + j]
            }
            let d = mx / -8
            let id: Float = d != 0 ? 1 / d : 0
            store(Float16(d).bitPattern, y, o)
            for j in 0..<16 {
                let q0 = min(15, UInt8(truncatingIfNeeded: Int8(truncating: x[base + j] * id + 8.5)))
                let q1 = min(15, UInt8(truncatingIfNeeded: Int8(truncating: x[base + 16 + j] * id + 8.5)))
                y[o + 2 + j] = q0 | (q1 << 4)
            }
        }
    }

    /// quantize_row_q4_1_ref: d = (max - min) / 15, m = min, q = min(15, (int8)((x - min)/d + 0.5)).
    static func q4_1(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<UInt8>) {
        for b in 0..<(x.count / 32) {
            let base = b * 32, o = b * 20
            var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
            for j in 0..<32 {
                let v = x[base + j]
                if v < lo { lo = v }
                if v > hi { hi = v }
            }
            let d = (hi - lo) / 15
            let id: Float = d != 0 ? 1 / d : 0
            store(Float16(d).bitPattern, y, o)
            store(Float16(lo).bitPattern, y, o + 2)
            for j in 0..<16 {
                let q0 = min(15, UInt8(truncatingIfNeeded: Int8(truncating: (x[base + j] - lo) * id + 0.5)))
                let q1 = min(15, UInt8(truncatingIfNeeded: Int8(truncating: (x[base + 16 + j] - lo) * id + 0.5)))
                y[o + 4 + j] = q0 | (q1 << 4)
            }
        }
    }
}

extension Int8 {
    /// C's `(int8_t)f` for the finite values quantizers produce: truncation toward zero, then the
    /// low 8 bits (values here are within 0...16, so wrapping never happens in practice).
    init(truncating f: Float) {
        let t = f.rounded(.towardZero)
        self = t.isFinite && abs(t) < 1e9 ? Int8(truncatingIfNeeded: Int(t)) : 0
    }
}

extension GGMLQuantization {
    /// Decodes ggml blocks to float32 as ggml's `dequantize_row_*` does.
    public static func decode(_ bytes: [UInt8], as type: GGMLType, name: String) throws(LanguageModelError) -> [Float] {
        let (per, size) = type.block
        guard bytes.count % size == 0 else { throw .tensor(name: name, message: "\(bytes.count) bytes are not whole \(type.name) blocks") }
        let blocks = bytes.count / size
        var out = [Float](repeating: 0, count: blocks * per)
        func half(_ b: UnsafeBufferPointer<UInt8>, _ at: Int) -> Float {
            Float(Float16(bitPattern: UInt16(b[at]) | UInt16(b[at + 1]) << 8))
        }
        var supported = true
        bytes.withUnsafeBufferPointer { b in
            out.withUnsafeMutableBufferPointer { x in
                switch type {
                case .f32:
                    for i in 0..<blocks { x[i] = Float(bitPattern: UInt32(b[4 * i]) | UInt32(b[4 * i + 1]) << 8 | UInt32(b[4 * i + 2]) << 16 | UInt32(b[4 * i + 3]) << 24) }
                case .f16:
                    for i in 0..<blocks { x[i] = half(b, 2 * i) }
                case .bf16:
                    for i in 0..<blocks { x[i] = Float(bitPattern: (UInt32(b[2 * i]) | UInt32(b[2 * i + 1]) << 8) << 16) }
                case .q8_0:
                    for k in 0..<blocks {
                        let d = half(b, k * 34)
                        for j in 0..<32 { x[k * 32 + j] = Float(Int8(bitPattern: b[k * 34 + 2 + j])) * d }
                    }
                case .q4_0:
                    for k in 0..<blocks {
                        let d = half(b, k * 18)
                        for j in 0..<16 {
                            let q = b[k * 18 + 2 + j]
                            x[k * 32 + j] = Float(Int(q & 0x0F) - 8) * d
                            x[k * 32 + 16 + j] = Float(Int(q >> 4) - 8) * d
                        }
                    }
                case .q4_1:
                    for k in 0..<blocks {
                        let d = half(b, k * 20), m = half(b, k * 20 + 2)
                        for j in 0..<16 {
                            let q = b[k * 20 + 4 + j]
                            x[k * 32 + j] = Float(q & 0x0F) * d + m
                            x[k * 32 + 16 + j] = Float(q >> 4) * d + m
                        }
                    }
                default: supported = false
                }
            }
        }
        guard supported else { throw .tensor(name: name, message: "cannot decode \(type.name) tensors (decodable: F32, F16, BF16, Q8_0, Q4_0, Q4_1)") }
        return out
    }
}
