import Foundation

/// The metadata of a GGUF file read from its header alone (no tensor data), for listing models
/// quickly. Arrays other than short ones are skipped; only scalar and string values are kept.
public struct GGUFHeader: Sendable {
    public var version: UInt32
    public var tensorCount: UInt64
    /// Scalars as their Swift values (Int, Double, Bool) or String.
    public var values: [String: String]

    public static func read(_ path: String) throws -> GGUFHeader {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw LanguageModelError.invalidModel(path: path, message: "cannot open file")
        }
        defer { try? handle.close() }
        // Metadata sits at the front; 16 MiB covers the large tokenizer arrays of common models.
        let data = (try? handle.read(upToCount: 16 << 20)) ?? Data()
        var reader = Reader(bytes: [UInt8](data), path: path)
        guard try reader.bytes(4) == Array("GGUF".utf8) else {
            throw LanguageModelError.invalidModel(path: path, message: "not a GGUF file (bad magic)")
        }
        let version: UInt32 = try reader.scalar()
        guard version >= 2 else { throw LanguageModelError.invalidModel(path: path, message: "GGUF version \(version) is not supported") }
        let tensors: UInt64 = try reader.scalar()
        let count: UInt64 = try reader.scalar()
        var values: [String: String] = [:]
        for _ in 0..<count {
            let key = try reader.string()
            let type: UInt32 = try reader.scalar()
            if let v = try reader.value(type: type) { values[key] = v }
        }
        return GGUFHeader(version: version, tensorCount: tensors, values: values)
    }

    struct Reader {
        let bytes: [UInt8]
        let path: String
        var offset = 0

        mutating func bytes(_ n: Int) throws -> [UInt8] {
            guard n >= 0, offset + n <= bytes.count else {
                throw LanguageModelError.invalidModel(path: path, message: "GGUF header truncated or too large at byte \(offset)")
            }
            defer { offset += n }
            return Array(bytes[offset..<(offset + n)])
        }

        mutating func scalar<T: FixedWidthInteger>() throws -> T {
            let b = try bytes(MemoryLayout<T>.size)
            return b.withUnsafeBytes { $0.loadUnaligned(as: T.self) }.littleEndian
        }

        mutating func string() throws -> String {
            let n: UInt64 = try scalar()
            guard n < 1 << 24 else { throw LanguageModelError.invalidModel(path: path, message: "GGUF string length \(n) is implausible at byte \(offset)") }
            return String(decoding: try bytes(Int(n)), as: UTF8.self)
        }

        /// Reads one value; returns its text for scalars and strings, nil for arrays (skipped).
        mutating func value(type: UInt32) throws -> String? {
            switch type {
            case 0: return String(Int8(bitPattern: try scalar() as UInt8))
            case 1: return String(try scalar() as UInt8)
            case 2: return String(Int16(bitPattern: try scalar() as UInt16))
            case 3: return String(try scalar() as UInt16)
            case 4: return String(Int32(bitPattern: try scalar() as UInt32))
            case 5: return String(try scalar() as UInt32)
            case 6: return String(Float(bitPattern: try scalar() as UInt32))
            case 7: return (try scalar() as UInt8) != 0 ? "true" : "false"
            case 8: return try string()
            case 9:
                let elementType: UInt32 = try scalar()
                let n: UInt64 = try scalar()
                for _ in 0..<n { _ = try value(type: elementType) }
                return nil
            case 10: return String(Int64(bitPattern: try scalar() as UInt64))
            case 11: return String(try scalar() as UInt64)
            case 12: return String(Double(bitPattern: try scalar() as UInt64))
            default: throw LanguageModelError.invalidModel(path: path, message: "unknown GGUF value type \(type) at byte \(offset)")
            }
        }
    }
}
