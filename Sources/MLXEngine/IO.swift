internal import CMLXBridge
import Foundation

/// Reading and writing arrays in standard formats.
public enum ArrayIO {
    /// Loads every tensor of a safetensors file, and its metadata.
    ///
    /// The tensors are read immediately, so a missing or truncated file fails here with the path.
    public static func loadSafetensors(_ path: String) throws(MLXError) -> (arrays: [String: MLXArray], metadata: [String: String]) {
        var map: OpaquePointer?, meta: OpaquePointer?
        guard mlxb_load_safetensors(path, &map, &meta) == 0, let map, let meta else {
            throw MLXError.io(path: path, message: String(cString: mlxb_last_error()))
        }
        defer { mlxb_map_free(map); mlxb_strmap_free(meta) }
        return (try dictionary(of: map), strings(of: meta))
    }

    /// Writes tensors (and string metadata) to a safetensors file.
    public static func saveSafetensors(_ path: String, arrays: [String: MLXArray], metadata: [String: String] = [:]) throws(MLXError) {
        var map: OpaquePointer?, meta: OpaquePointer?
        try check(mlxb_map_new(&map), "save_safetensors")
        defer { mlxb_map_free(map) }
        try check(mlxb_strmap_new(&meta), "save_safetensors")
        defer { mlxb_strmap_free(meta) }
        for (key, value) in arrays.sorted(by: { $0.key < $1.key }) { try check(mlxb_map_insert(map, key, value.handle), "save_safetensors") }
        for (key, value) in metadata { try check(mlxb_strmap_insert(meta, key, value), "save_safetensors") }
        guard mlxb_save_safetensors(path, map, meta) == 0 else {
            throw MLXError.io(path: path, message: String(cString: mlxb_last_error()))
        }
    }

    /// Loads a GGUF file: its tensors (quantised ones split into `.weight`, `.scales`, `.biases`
    /// in MLX's affine layout) and its metadata.
    public static func loadGGUF(_ path: String) throws(MLXError) -> GGUFFile {
        var g: OpaquePointer?
        guard mlxb_load_gguf(path, &g) == 0, let g else {
            throw MLXError.io(path: path, message: String(cString: mlxb_last_error()))
        }
        defer { mlxb_gguf_free(g) }
        var map: OpaquePointer?
        try check(mlxb_gguf_arrays(g, &map), "load_gguf")
        defer { mlxb_map_free(map) }
        var metadata: [String: GGUFValue] = [:]
        for i in 0..<mlxb_gguf_meta_count(g) {
            let key = String(cString: mlxb_gguf_meta_key(g, i))
            switch mlxb_gguf_meta_kind(g, i) {
            case MLXB_META_STRING: metadata[key] = .string(String(cString: mlxb_gguf_meta_string(g, i)))
            case MLXB_META_STRINGS:
                let n = mlxb_gguf_meta_strings_count(g, i)
                metadata[key] = .strings((0..<n).map { String(cString: mlxb_gguf_meta_strings_item(g, i, $0)) })
            case MLXB_META_ARRAY: metadata[key] = .array(try produce("load_gguf") { mlxb_gguf_meta_array(g, i, $0) })
            default: break
            }
        }
        return GGUFFile(tensors: try dictionary(of: map!), metadata: metadata)
    }

    static func dictionary(of map: OpaquePointer) throws(MLXError) -> [String: MLXArray] {
        var result: [String: MLXArray] = [:]
        for i in 0..<mlxb_map_size(map) {
            result[String(cString: mlxb_map_key(map, i))] = try produce("map_value") { mlxb_map_value(map, i, $0) }
        }
        return result
    }

    static func strings(of map: OpaquePointer) -> [String: String] {
        var result: [String: String] = [:]
        for i in 0..<mlxb_strmap_size(map) {
            result[String(cString: mlxb_strmap_key(map, i))] = String(cString: mlxb_strmap_value(map, i))
        }
        return result
    }
}

/// A metadata value of a GGUF file.
public enum GGUFValue: Sendable {
    /// Numbers (scalars are zero-dimensional arrays).
    case array(MLXArray)
    case string(String)
    case strings([String])

    /// The value as a string, if it is one.
    public var string: String? { if case let .string(s) = self { s } else { nil } }
    /// The value as a list of strings, if it is one.
    public var strings: [String]? { if case let .strings(s) = self { s } else { nil } }
    /// The value as an integer, if it is a numeric scalar.
    public var int: Int? { if case let .array(a) = self, a.size == 1 { (try? a.item(Int64.self)).map(Int.init) } else { nil } }
    /// The value as a float, if it is a numeric scalar.
    public var float: Float? { if case let .array(a) = self, a.size == 1 { try? a.item(Float.self) } else { nil } }
}

/// The contents of a GGUF file.
public struct GGUFFile: Sendable {
    public var tensors: [String: MLXArray]
    public var metadata: [String: GGUFValue]
}
