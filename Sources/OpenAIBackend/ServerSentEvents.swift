/// An incremental parser for a `text/event-stream` body (the WHATWG server-sent events format),
/// reduced to what chat streaming needs: the `data` of each event.
///
/// Bytes arrive in arbitrary pieces: a line, or a multi-byte character, may be split across them.
/// Lines end in `\n`, `\r\n` or `\r` (a `\r\n` may itself be split); lines starting with `:` are
/// comments (servers send them as keep-alives); an event's several `data:` lines are joined with
/// `\n`; a blank line ends an event; fields other than `data` are ignored.
struct ServerSentEventParser {
    private var line: [UInt8] = []
    private var data: [String] = []
    private var hasData = false
    /// The previous byte was a `\r`, so a `\n` right after it ends no new line.
    private var afterCarriageReturn = false

    /// The `data` of every event the bytes complete, in order.
    mutating func consume(_ bytes: some Sequence<UInt8>) -> [String] {
        var events: [String] = []
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\n") where afterCarriageReturn:
                afterCarriageReturn = false
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                afterCarriageReturn = byte == UInt8(ascii: "\r")
                if let event = endLine() { events.append(event) }
            default:
                afterCarriageReturn = false
                line.append(byte)
            }
        }
        return events
    }

    /// Call at the end of the body. Returns the event left without its closing blank line (servers
    /// that omit it are common enough to accept), and whether the body stopped inside a line, which
    /// means it was cut.
    mutating func finish() -> (event: String?, cutMidLine: Bool) {
        let cut = !line.isEmpty
        line = []
        defer { data = []; hasData = false }
        return (hasData ? data.joined(separator: "\n") : nil, cut)
    }

    private mutating func endLine() -> String? {
        defer { line = [] }
        if line.isEmpty {
            guard hasData else { return nil }
            defer { data = []; hasData = false }
            return data.joined(separator: "\n")
        }
        if line.first == UInt8(ascii: ":") { return nil }
        let colon = line.firstIndex(of: UInt8(ascii: ":"))
        let field = line[..<(colon ?? line.endIndex)]
        guard field.elementsEqual("data".utf8) else { return nil }
        var valueStart = colon.map { line.index(after: $0) } ?? line.endIndex
        if valueStart < line.endIndex, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        data.append(String(decoding: line[valueStart...], as: UTF8.self))
        hasData = true
        return nil
    }
}
