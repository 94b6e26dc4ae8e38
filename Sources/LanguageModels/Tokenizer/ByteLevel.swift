/// GPT-2's reversible map between bytes and printable characters, which byte-level BPE
/// vocabularies are written in: a token's string spells its bytes one character per byte (the
/// space byte 0x20 is "Ġ", the newline 0x0A is "Ċ").
enum ByteLevel {
    /// The character spelling each byte.
    static let characterOfByte: [Unicode.Scalar] = {
        // Printable Latin-1 bytes spell themselves; the other 68 bytes are moved, in order, to
        // U+0100 and up, so that no token string contains whitespace or control characters.
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The byte a character spells, indexed by scalar value (< 0x144), or -1.
    static let byteOfCharacter: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, scalar) in characterOfByte.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    /// The byte-level spelling of raw bytes (how vocabularies write them).
    static func encode<S: Sequence<UInt8>>(_ bytes: S) -> String {
        var result = String.UnicodeScalarView()
        for byte in bytes { result.append(characterOfByte[Int(byte)]) }
        return String(result)
    }

    /// The bytes a token string stands for: its byte-level spelling read back when every character
    /// belongs to the alphabet, otherwise the string's own UTF-8. This is what Hugging Face's
    /// ByteLevel decoder does, so added tokens such as `<|im_start|>` decode to themselves.
    static func decode(_ token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.utf8.count)
        for scalar in token.unicodeScalars {
            let value = Int(scalar.value)
            guard value < byteOfCharacter.count, byteOfCharacter[value] >= 0 else { return Array(token.utf8) }
            bytes.append(UInt8(byteOfCharacter[value]))
        }
        return bytes
    }
}
