import Foundation

/// One measured figure, optionally against an anchor measured in the same run.
public struct BenchmarkFigure: Sendable, Codable {
    public var name: String
    public var value: Double
    public var unit: String
    /// What the figure is compared with, and its value in the same unit.
    public var anchorName: String?
    public var anchorValue: Double?
    /// How the ratio reads: for rates, value / anchor (higher is better); for times,
    /// anchor / value (higher is better, 1.0 = as fast as the anchor).
    public var higherIsBetter: Bool
    public var goal: String?

    public init(name: String, value: Double, unit: String, anchorName: String? = nil, anchorValue: Double? = nil, higherIsBetter: Bool, goal: String? = nil) {
        self.name = name
        self.value = value
        self.unit = unit
        self.anchorName = anchorName
        self.anchorValue = anchorValue
        self.higherIsBetter = higherIsBetter
        self.goal = goal
    }

    /// The speed ratio against the anchor (> 1: faster than the anchor).
    public var ratio: Double? {
        guard let a = anchorValue, a > 0, value > 0 else { return nil }
        return higherIsBetter ? value / a : a / value
    }
}

/// The result of one benchmark command: a table for people and one JSON line for machines.
public struct BenchmarkReport: Sendable, Codable {
    public var benchmark: String
    public var machine: String
    public var figures: [BenchmarkFigure]
    public var notes: [String]

    public init(benchmark: String, figures: [BenchmarkFigure] = [], notes: [String] = []) {
        self.benchmark = benchmark
        self.machine = BenchmarkReport.describeMachine()
        self.figures = figures
        self.notes = notes
    }

    /// A fixed-width table.
    public func table() -> String {
        func fmt(_ v: Double) -> String { v >= 100 ? String(format: "%.1f", v) : String(format: "%.3g", v) }
        var rows: [[String]] = [["figure", "value", "anchor", "anchor value", "speed vs anchor", "goal"]]
        for f in figures {
            rows.append([
                f.name, "\(fmt(f.value)) \(f.unit)", f.anchorName ?? "-",
                f.anchorValue.map { "\(fmt($0)) \(f.unit)" } ?? "-",
                f.ratio.map { String(format: "%.2fx", $0) } ?? "-", f.goal ?? "",
            ])
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        var out = "\(benchmark) on \(machine)\n"
        for (i, r) in rows.enumerated() {
            out += zip(r, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ") + "\n"
            if i == 0 { out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        for n in notes { out += "note: \(n)\n" }
        return out
    }

    /// The report as one line of JSON.
    public func jsonLine() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var object = try JSONSerialization.jsonObject(with: encoder.encode(self)) as! [String: Any]
        object["ratios"] = Dictionary(uniqueKeysWithValues: figures.compactMap { f in f.ratio.map { (f.name, $0) } })
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    static func describeMachine() -> String {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let memory = Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824
        var cpu = "unknown CPU"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let name = line.split(separator: ":", maxSplits: 1).last {
            cpu = name.trimmingCharacters(in: .whitespaces)
        }
        return "\(cpu), \(cores) cores, \(String(format: "%.0f", memory)) GiB"
    }
}

/// The median of `values` (0 for none).
func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Wall time of one run of `body`, in ms.
func timedMilliseconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
}

/// Times `body`: `warmup` untimed runs, then the median of `iterations` timed runs, in ms.
public func medianMilliseconds(warmup: Int = 2, iterations: Int = 10, _ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<warmup { try body() }
    var times: [Double] = []
    for _ in 0..<iterations { times.append(try timedMilliseconds(body)) }
    return median(times)
}

/// Medians of two bodies timed alternately (a b, then b a, ...), so that a machine whose speed
/// drifts affects both alike: a same-run comparison of two ways to do one thing.
public func interleavedMedianMilliseconds(warmup: Int = 1, iterations: Int = 10, _ a: () throws -> Void, _ b: () throws -> Void) rethrows -> (a: Double, b: Double) {
    for _ in 0..<warmup {
        try a()
        try b()
    }
    var ta: [Double] = [], tb: [Double] = []
    for i in 0..<iterations {
        if i % 2 == 0 {
            ta.append(try timedMilliseconds(a))
            tb.append(try timedMilliseconds(b))
        } else {
            tb.append(try timedMilliseconds(b))
            ta.append(try timedMilliseconds(a))
        }
    }
    return (median(ta), median(tb))
}
