import Foundation
import ValueAlignCore
import ValueSpace

/// The audit's report.html: one self-contained page (inline CSS and SVG, no scripts).
enum AuditReportHTML {
    static func render(_ s: AuditSummary) -> String {
        func e(_ t: String) -> String { HTML.escape(t) }
        func f(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }
        func pct(_ n: Int, _ of: Int) -> String { of == 0 ? "–" : String(format: "%.1f%%", 100 * Double(n) / Double(of)) }
        let scored = s.pairs + s.preferencePairs
        var h = """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Data audit: \(e(URL(fileURLWithPath: s.input).lastPathComponent))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
        table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
        th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}.cards{display:flex;gap:1em;flex-wrap:wrap}
        .card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:8em}.card b{font-size:1.5em;display:block}
        .keep{color:#1a7f37}.review{color:#9a6700}.drop{color:#cf222e}.bad{color:#6e7781}small{color:#666}
        .ex{font-size:.9em;max-width:40em}
        </style></head><body>
        <h1>Data audit</h1>
        <p><b>\(e(s.input))</b> · policy <b>\(e(s.policy))</b> · evaluator <b>\(e(s.evaluator))</b>\(s.recordsPerSecond.map { " · " + f($0, 1) + " records/s this run" } ?? "")</p>
        <div class="cards">
        <div class="card">records<b>\(s.records)</b><small>\(s.pairs) pairs, \(s.preferencePairs) preference pairs</small></div>
        """
        for d in [AuditedRecord.Decision.keep, .review, .drop, .bad] {
            let n = s.decisions[d.rawValue] ?? 0
            h += "<div class=\"card \(d.rawValue)\">\(d.rawValue)<b>\(n)</b><small>\(pct(n, s.records))</small></div>"
        }
        h += """
        <div class="card">near-duplicates<b>\(s.duplicates)</b><small>\(pct(s.duplicates, scored))</small></div>
        <div class="card">overlap with evaluation sets<b>\(s.contaminated)</b><small>\(pct(s.contaminated, scored))</small></div>
        </div>
        <p><small>keep: the policy allows the response; review: it flags or would revise it, or a preference pair looks mislabelled;
        drop: the policy blocks it, or it is a near-duplicate of an earlier record, or its prompt overlaps an evaluation item.
        The evaluator is a model: read the worst records below before trusting a filter built on it.</small></p>
        """
        // Evaluation sets checked.
        h += "<h2>Evaluation sets checked for overlap</h2><table><tr><th>set</th><th class=num>items</th><th class=num>records overlapping</th></tr>"
        for (set, n) in s.evaluationSets.sorted(by: { $0.key < $1.key }) {
            h += "<tr><td>\(e(set))</td><td class=num>\(n)</td><td class=num>\(s.contaminatedBySet[set] ?? 0)</td></tr>"
        }
        if s.evaluationSets.isEmpty { h += "<tr><td colspan=3>none (decontamination was not asked for)</td></tr>" }
        h += "</table>"

        // Value distribution.
        h += "<h2>Value distribution of the responses</h2><p><small>Each row: mean, and a histogram of the evaluator's score over [-1, 1] (opposed … supported). Mean distance to the policy's target: \(f(s.meanDistance, 3)).</small></p><table><tr><th>value</th><th class=num>mean</th><th>distribution (−1 … +1)</th></tr>"
        for (i, value) in SchwartzValue.allCases.enumerated() {
            let bins = s.histograms[i]
            let top = max(1, bins.max() ?? 1)
            var svg = "<svg width=\"200\" height=\"28\" role=\"img\" aria-label=\"histogram\">"
            for (b, n) in bins.enumerated() {
                let height = 26.0 * Double(n) / Double(top)
                let color = b < 10 ? "#cf222e" : "#1a7f37"
                svg += "<rect x=\"\(b * 10)\" y=\"\(f(27 - height, 1))\" width=\"9\" height=\"\(f(height, 1))\" fill=\"\(color)\"><title>\(n)</title></rect>"
            }
            svg += "<line x1=\"100\" y1=\"0\" x2=\"100\" y2=\"28\" stroke=\"#999\"/></svg>"
            h += "<tr><td>\(e(value.rawValue))</td><td class=num>\(f(s.meanValues[i]))</td><td>\(svg)</td></tr>"
        }
        h += "</table>"

        // Per source.
        h += "<h2>By source</h2><table><tr><th>source</th><th class=num>records</th><th class=num>keep</th><th class=num>review</th><th class=num>drop</th><th class=num>mean distance</th><th>lowest mean value</th></tr>"
        for r in s.sources.prefix(50) {
            let lowest = r.meanValues.indices.min { r.meanValues[$0] < r.meanValues[$1] }.map { "\(SchwartzValue.allCases[$0].rawValue) \(f(r.meanValues[$0]))" } ?? ""
            h += "<tr><td>\(e(r.source))</td><td class=num>\(r.records)</td><td class=num>\(r.keep)</td><td class=num>\(r.review)</td><td class=num>\(r.drop)</td><td class=num>\(f(r.meanDistance, 3))</td><td>\(e(lowest))</td></tr>"
        }
        if s.sources.count > 50 { h += "<tr><td colspan=7>… \(s.sources.count - 50) more sources in summary.json</td></tr>" }
        h += "</table>"

        func examples(_ title: String, _ list: [AuditSummary.Example], note: String) {
            h += "<h2>\(e(title))</h2><p><small>\(e(note))</small></p><table><tr><th>line</th><th>decision</th><th>prompt / response</th><th>why</th></tr>"
            for x in list {
                h += "<tr><td class=num>\(x.line)<br><small>\(e(x.id))</small></td><td class=\"\(x.decision.rawValue)\">\(x.decision.rawValue)\(x.distance.map { "<br><small>d \(f($0))</small>" } ?? "")</td>"
                h += "<td class=ex><b>prompt:</b> \(e(x.prompt))<br><b>response:</b> \(e(x.response))</td><td class=ex>\(x.reasons.map(e).joined(separator: "<br>"))</td></tr>"
            }
            if list.isEmpty { h += "<tr><td colspan=4>none</td></tr>" }
            h += "</table>"
        }
        examples("Worst records", s.worst, note: "Dropped before reviewed, then by distance to the target; \(AuditSummary.listed) at most (scores.jsonl has every record).")
        if s.preferencePairs > 0 {
            h += "<h2>Preference pairs</h2><p>chosen lies closer to the target than rejected in <b>\(s.chosenCloser)</b> of \(s.preferencePairs) pairs (\(pct(s.chosenCloser, s.preferencePairs))); <b>\(s.suspectLabels)</b> pairs have rejected closer by more than the margin (possible mislabels, sent to review).</p>"
            examples("Most suspect preference pairs", s.suspects, note: "Response shown: the chosen one; largest (chosen − rejected) distance first.")
        }
        h += "<h2>Bad records</h2><table><tr><th>line</th><th>problem</th><th>text</th></tr>"
        for b in s.bad { h += "<tr><td class=num>\(b.line)</td><td>\(e(b.message))</td><td class=ex>\(e(String(b.raw.prefix(200))))</td></tr>" }
        if s.bad.isEmpty { h += "<tr><td colspan=3>none</td></tr>" } else if s.badRecords > s.bad.count { h += "<tr><td colspan=3>… \(s.badRecords - s.bad.count) more in bad-lines.jsonl</td></tr>" }
        h += "</table></body></html>\n"
        return h
    }
}
