import Foundation

/// A duration that could not be read, with the text as given.
public struct DurationTextError: Error, Equatable, CustomStringConvertible {
    public var text: String
    public init(text: String) { self.text = text }
    public var description: String { "'\(text)' is not a duration; write e.g. 90s, 15m or 1h30m" }
}

/// Durations as people write and read them: `90s`, `15m`, `1h30m`, `2h` or plain seconds on the
/// command line; "12m34s" in reports; "1:02:03" on progress bars.
public enum DurationText {
    /// Seconds in `text` (`90s`, `15m`, `1h30m`, `2h`, or a plain number of seconds); more than 0.
    public static func seconds(_ text: String) throws(DurationTextError) -> Double {
        let bad = DurationTextError(text: text)
        if let plain = Double(text) {
            guard plain.isFinite, plain > 0 else { throw bad }
            return plain
        }
        var total = 0.0, number = ""
        var sawUnit = false
        for c in text {
            if c.isNumber || c == "." {
                number.append(c)
            } else {
                guard let n = Double(number) else { throw bad }
                switch c {
                case "h": total += n * 3600
                case "m": total += n * 60
                case "s": total += n
                default: throw bad
                }
                number = ""
                sawUnit = true
            }
        }
        guard number.isEmpty, sawUnit, total > 0 else { throw bad }
        return total
    }

    /// 754 s -> "12m34s"; 3700 s -> "1h01m"; 42 s -> "42s".
    public static func format(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }

    /// A clock reading for progress bars: 75 s -> "1:15", 3723 s -> "1:02:03".
    public static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

extension Duration {
    /// The duration in seconds, as a Double (for rates, time-outs in messages and reports).
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
