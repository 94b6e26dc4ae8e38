/// What a dataset reader kept, normalised and dropped. Every row of the file is either kept or
/// counted under one reason in `droppedRows`.
public struct DatasetReport: Sendable, Codable, Equatable {
    /// Non-blank lines read.
    public var rows: Int
    /// Rows turned into examples.
    public var kept: Int
    /// Reason -> number of rows dropped for it.
    public var droppedRows: [String: Int]
    /// Raw label form that was rewritten to a canonical one (e.g. "security: 1") -> count.
    public var normalisedLabels: [String: Int]
    /// Raw label that could not be used (malformed mark, name outside the ten) -> count. The
    /// rest of its row is kept.
    public var droppedLabels: [String: Int]
    /// Repeated labels that agree with an earlier one for the same value in the same row
    /// (e.g. "benevolence: 1" and "benevolence: +1"), merged into one.
    public var mergedDuplicates: Int
    /// Values labelled both +1 and -1 in one row (each counted once per row), whatever the
    /// policy did with them.
    public var conflicts: Int

    public init(
        rows: Int = 0, kept: Int = 0, droppedRows: [String: Int] = [:], normalisedLabels: [String: Int] = [:],
        droppedLabels: [String: Int] = [:], mergedDuplicates: Int = 0, conflicts: Int = 0
    ) {
        self.rows = rows
        self.kept = kept
        self.droppedRows = droppedRows
        self.normalisedLabels = normalisedLabels
        self.droppedLabels = droppedLabels
        self.mergedDuplicates = mergedDuplicates
        self.conflicts = conflicts
    }

    /// Rows dropped, all reasons together.
    public var droppedRowCount: Int { droppedRows.values.reduce(0, +) }

    /// A few lines for people: counts, then each reason and raw form with its count (largest
    /// first).
    public var summary: String {
        func list(_ d: [String: Int]) -> String {
            d.isEmpty ? "none"
                : d.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                    .map { "\"\($0.key)\" x\($0.value)" }.joined(separator: ", ")
        }
        let normalised = normalisedLabels.values.reduce(0, +), dropped = droppedLabels.values.reduce(0, +)
        var lines = ["\(rows) rows, \(kept) kept, \(droppedRowCount) dropped", "dropped rows: \(list(droppedRows))"]
        if normalised + dropped + mergedDuplicates + conflicts > 0 {
            lines += [
                "normalised labels (\(normalised)): \(list(normalisedLabels))",
                "dropped labels (\(dropped)): \(list(droppedLabels))",
                "merged duplicate labels: \(mergedDuplicates); conflicting values: \(conflicts)",
            ]
        }
        return lines.joined(separator: "\n")
    }

    mutating func count(_ key: String, in keyPath: WritableKeyPath<DatasetReport, [String: Int]>) {
        self[keyPath: keyPath][key, default: 0] += 1
    }
}
