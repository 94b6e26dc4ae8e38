import ValueAlignCore
import Foundation

/// A one-line progress bar on standard error with rate and ETA. On a terminal it redraws in
/// place; otherwise (logs, CI) it prints a line at most every 10 seconds and at the end.
final class ProgressBar {
    var total: Int
    let label: String
    let unit: String
    private let start = Date()
    private var lastPrint = Date.distantPast
    private let interactive = isatty(STDERR_FILENO) == 1
    private let quiet: Bool
    private var lastDone = -1
    /// The count at the first update: work done before the bar appeared (a first batch, or
    /// a resumed run) does not count toward its rate.
    private var firstDone: Int?

    init(total: Int, label: String, unit: String = "items", quiet: Bool = false) {
        self.total = total
        self.label = label
        self.unit = unit
        self.quiet = quiet
    }

    /// Shows `done` of `total`, plus an extra rate such as tokens/s.
    func update(_ done: Int, extra: String = "", final: Bool = false) {
        guard !quiet else { return }
        let now = Date()
        guard final || now.timeIntervalSince(lastPrint) >= (interactive ? 0.1 : 10) else { return }
        // In a log, the closing line repeats nothing already printed.
        if final, !interactive, done == lastDone { return }
        lastPrint = now
        lastDone = done
        let elapsed = now.timeIntervalSince(start)
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        if firstDone == nil { firstDone = done }
        let counted = done - (firstDone ?? 0)
        // No rate until there is something to divide: a bar that appears after a first batch
        // would otherwise show that batch over a few microseconds.
        let rate = elapsed >= 0.5 && counted > 0 ? Double(counted) / elapsed : 0
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        var line = "\(label) \(bar) \(done)/\(total) \(unit)"
        if rate > 0 { line += "  \(String(format: "%.1f", rate))/s" }
        if !extra.isEmpty { line += "  \(extra)" }
        line += "  elapsed \(DurationText.clock(elapsed))"
        if done < total, rate > 0 { line += "  ETA \(DurationText.clock(eta))" }
        let text = interactive ? "\r\u{1B}[2K" + line + (final ? "\n" : "") : line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }
}
