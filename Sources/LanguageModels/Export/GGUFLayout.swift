public import Foundation

/// A GGUF file's structure read byte-exactly: metadata entries as raw encoded values and tensor
/// descriptors with their data offsets. Export copies what it does not change verbatim, so the
/// tokenizer, chat template and every key llama.cpp reads stay exactly as they were.
///
/// Format (GGUF v2/v3, little-endian): magic, version, tensor count, entry count; entries (key,
/// type, value); tensor descriptors (name, dims (innermost first), type, offset); padding to the
/// alignment (`general.alignment`, default 32); tensor data, each tensor aligned.
public struct GGUFLayout: Sendable {
    /// One metadata entry: its value's type code and encoded bytes (without the type code).
    public struct Entry: Sendable {
        public var key: String
        public var type: UInt32
        public var value: [UInt8]

        public init(key: String, type: UInt32, value: [UInt8]) {
            self.key = key
            self.type = type
            self.value = value
        }

        public static func uint32(_ key: String, _ v: UInt32) -> Entry { Entry(key: key, type: 4, value: GGUFLayout.bytes(of: v)) }
        public static func string(_ key: String, _ s: String) -> Entry { Entry(key: key, type: 8, value: GGUFLayout.encode(string: s)) }
        public static func bool(_ key: String, _ b: Bool) -> Entry { Entry(key: key, type: 7, value: [b ? 1 : 0]) }
        public static func float32(_ key: String, _ v: Float) -> Entry { Entry(key: key, type: 6, value: GGUFLayout.bytes(of: v.bitPattern)) }

        /// The value of a string entry; nil for other types or a malformed value.
        public var stringValue: String? {
            guard type == 8 else { return nil }
            var reader = ByteReader(data: Data(value), path: key)
            guard let s = try? reader.string(), reader.offset == value.count else { return nil }
            return s
        }
    }

    /// One tensor: name, dimensions innermost first (GGUF's `ne`: [columns, rows] for a matrix),
    /// ggml type, and byte offset of its data from the start of the data section.
    public struct Tensor: Sendable {
        public var name: String
        public var dimensions: [Int]
        public var type: GGMLType
        public var offset: Int

        public init(name: String, dimensions: [Int], type: GGMLType, offset: Int = 0) {
            self.name = name
            self.dimensions = dimensions
            self.type = type
            self.offset = offset
        }

        /// Elements in the tensor.
        public var count: Int { dimensions.reduce(1, *) }
        /// Bytes of its data.
        public var byteCount: Int { type.byteCount(elements: count) }
        /// [rows, columns] as MLX shapes it (outermost first).
        public var shape: [Int] { dimensions.reversed() }
    }

    public var version: UInt32
    public var entries: [Entry]
    public var tensors: [Tensor]
    public var alignment: Int
    /// Byte offset of the data section in the file it was read from.
    public var dataOffset: Int

    public init(version: UInt32 = 3, entries: [Entry], tensors: [Tensor], alignment: Int = 32, dataOffset: Int = 0) {
        self.version = version
        self.entries = entries
        self.tensors = tensors
        self.alignment = alignment
        self.dataOffset = dataOffset
    }

    public subscript(key: String) -> Entry? {
        get { entries.first { $0.key == key } }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i] = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append(newValue)
            }
        }
    }

    // MARK: reading

    /// Reads the structure of the GGUF file at `path` (the file is mapped; tensor data is not read).
    public static func read(_ path: String) throws(LanguageModelError) -> (layout: GGUFLayout, file: Data) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw .invalidModel(path: path, message: "cannot read: \(error.localizedDescription)")
        }
        var r = ByteReader(data: data, path: path)
        guard try r.take(4) == Array("GGUF".utf8) else { throw .invalidModel(path: path, message: "not a GGUF file (bad magic)") }
        let version: UInt32 = try r.scalar()
        guard version == 2 || version == 3 else { throw .invalidModel(path: path, message: "GGUF version \(version) is not supported (2 or 3)") }
        let tensorCount: UInt64 = try r.scalar()
        let entryCount: UInt64 = try r.scalar()
        guard tensorCount < 1 << 24, entryCount < 1 << 24 else {
            throw .invalidModel(path: path, message: "implausible counts: \(tensorCount) tensors, \(entryCount) metadata entries")
        }
        var entries: [Entry] = []
        for _ in 0..<entryCount {
            let key = try r.string()
            let type: UInt32 = try r.scalar()
            let start = r.offset
            try r.skipValue(type: type)
            entries.append(Entry(key: key, type: type, value: [UInt8](data[data.startIndex + start ..< data.startIndex + r.offset])))
        }
        var alignment = 32
        if let a = entries.first(where: { $0.key == "general.alignment" }) {
            guard a.type == 4, a.value.count == 4 else { throw .invalidModel(path: path, message: "general.alignment is not a uint32") }
            alignment = Int(a.value.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
            guard alignment > 0, alignment % 8 == 0 else { throw .invalidModel(path: path, message: "general.alignment \(alignment) is not a positive multiple of 8") }
        }
        var tensors: [Tensor] = []
        for _ in 0..<tensorCount {
            let name = try r.string()
            let n: UInt32 = try r.scalar()
            guard n >= 1, n <= 4 else { throw .invalidModel(path: path, message: "tensor '\(name)' has \(n) dimensions") }
            var dims: [Int] = []
            for _ in 0..<n {
                let d: UInt64 = try r.scalar()
                guard d < 1 << 40 else { throw .invalidModel(path: path, message: "tensor '\(name)' has an implausible dimension \(d)") }
                dims.append(Int(d))
            }
            let code: UInt32 = try r.scalar()
            guard let type = GGMLType(rawValue: code) else {
                throw .tensor(name: name, message: "ggml type \(code) is not one this exporter can copy (\(GGMLType.allCases.map(\.name).joined(separator: ", ")))")
            }
            let offset: UInt64 = try r.scalar()
            let tensor = Tensor(name: name, dimensions: dims, type: type, offset: Int(offset))
            guard dims[0] % type.blockSize == 0 else {
                throw .tensor(name: name, message: "row length \(dims[0]) is not a multiple of \(type.name)'s block of \(type.blockSize)")
            }
            tensors.append(tensor)
        }
        let dataOffset = Self.aligned(r.offset, alignment)
        for t in tensors where dataOffset + t.offset + t.byteCount > data.count {
            throw .invalidModel(path: path, message: "tensor '\(t.name)' runs past the end of the file (truncated download?)")
        }
        return (GGUFLayout(version: version, entries: entries, tensors: tensors, alignment: alignment, dataOffset: dataOffset), data)
    }

    // MARK: writing

    /// Writes a GGUF file: this layout's entries, then its tensors in order, each with the bytes
    /// `data` returns for it (called once per tensor, in order, so memory holds one tensor at a
    /// time). Offsets are recomputed. The file appears at `path` only when complete.
    public func write(to path: String, data: (Tensor) throws -> [UInt8]) throws {
        var header: [UInt8] = Array("GGUF".utf8)
        header += Self.bytes(of: UInt32(3))
        header += Self.bytes(of: UInt64(tensors.count))
        header += Self.bytes(of: UInt64(entries.count))
        for e in entries {
            header += Self.encode(string: e.key)
            header += Self.bytes(of: e.type)
            header += e.value
        }
        var offset = 0
        var placed: [Tensor] = []
        for var t in tensors {
            t.offset = offset
            placed.append(t)
            header += Self.encode(string: t.name)
            header += Self.bytes(of: UInt32(t.dimensions.count))
            for d in t.dimensions { header += Self.bytes(of: UInt64(d)) }
            header += Self.bytes(of: t.type.rawValue)
            header += Self.bytes(of: UInt64(offset))
            offset = Self.aligned(offset + t.byteCount, alignment)
        }
        header += [UInt8](repeating: 0, count: Self.aligned(header.count, alignment) - header.count)

        let temporary = path + ".partial"
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
            throw LanguageModelError.invalidModel(path: path, message: "cannot create \(temporary)")
        }
        guard let handle = FileHandle(forWritingAtPath: temporary) else {
            throw LanguageModelError.invalidModel(path: path, message: "cannot create the file")
        }
        do {
            try handle.write(contentsOf: header)
            var written = 0
            for (index, t) in placed.enumerated() {
                let bytes = try data(t)
                guard bytes.count == t.byteCount else {
                    throw LanguageModelError.tensor(name: t.name, message: "export produced \(bytes.count) bytes, \(t.type.name) \(t.dimensions) needs \(t.byteCount)")
                }
                try handle.write(contentsOf: bytes)
                written = t.offset + bytes.count
                let next = index == placed.count - 1 ? written : Self.aligned(written, alignment)
                if next > written { try handle.write(contentsOf: [UInt8](repeating: 0, count: next - written)) }
            }
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        _ = try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: temporary, toPath: path)
    }

    /// The bytes of `tensor` in the file `file` that this layout was read from.
    public func bytes(of tensor: Tensor, in file: Data) -> [UInt8] {
        let start = file.startIndex + dataOffset + tensor.offset
        return [UInt8](file[start ..< start + tensor.byteCount])
    }

    static func aligned(_ n: Int, _ alignment: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    static func bytes<T: FixedWidthInteger>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    static func encode(string: String) -> [UInt8] {
        let utf8 = Array(string.utf8)
        return bytes(of: UInt64(utf8.count)) + utf8
    }

    /// A bounds-checked little-endian reader whose errors name the file and byte.
    struct ByteReader {
        let data: Data
        let path: String
        var offset = 0

        mutating func take(_ n: Int) throws(LanguageModelError) -> [UInt8] {
            guard n >= 0, offset + n <= data.count else {
                throw .invalidModel(path: path, message: "GGUF file truncated at byte \(offset) (wanted \(n) more bytes)")
            }
            defer { offset += n }
            let s = data.startIndex + offset
            return [UInt8](data[s ..< s + n])
        }

        mutating func skip(_ n: Int) throws(LanguageModelError) {
            guard n >= 0, offset + n <= data.count else {
                throw .invalidModel(path: path, message: "GGUF file truncated at byte \(offset) (wanted \(n) more bytes)")
            }
            offset += n
        }

        mutating func scalar<T: FixedWidthInteger>() throws(LanguageModelError) -> T {
            let b = try take(MemoryLayout<T>.size)
            return T(littleEndian: b.withUnsafeBytes { $0.loadUnaligned(as: T.self) })
        }

        mutating func string() throws(LanguageModelError) -> String {
            let n: UInt64 = try scalar()
            guard n < 1 << 26 else { throw .invalidModel(path: path, message: "GGUF string length \(n) is implausible at byte \(offset)") }
            return String(decoding: try take(Int(n)), as: UTF8.self)
        }

        /// Skips one value of GGUF type `type`.
        mutating func skipValue(type: UInt32) throws(LanguageModelError) {
            switch type {
            case 0, 1, 7: try skip(1)
            case 2, 3: try skip(2)
            case 4, 5, 6: try skip(4)
            case 10, 11, 12: try skip(8)
            case 8:
                let n: UInt64 = try scalar()
                guard n < 1 << 26 else { throw .invalidModel(path: path, message: "GGUF string length \(n) is implausible at byte \(offset)") }
                try skip(Int(n))
            case 9:
                let element: UInt32 = try scalar()
                let n: UInt64 = try scalar()
                guard n < 1 << 32 else { throw .invalidModel(path: path, message: "GGUF array length \(n) is implausible at byte \(offset)") }
                for _ in 0..<n { try skipValue(type: element) }
            default: throw .invalidModel(path: path, message: "unknown GGUF value type \(type) at byte \(offset)")
            }
        }
    }
}
