import ValueAlignCore
import Foundation

/// Renders value profiles for people: a self-contained HTML page (inline CSS and SVG, no
/// external assets) and a Markdown summary.
///
/// The page shows a radar chart with one polygon per profile, per-value bars with confidence
/// whiskers, a table of the figures, and — when a target is given — each profile's distances
/// to it. `facts` carry headline figures computed elsewhere (e.g. BaseAlign's "distance
/// change -0.21 [-0.27, -0.15]"). All text is escaped.
public struct ProfileReport: Sendable {
    /// A headline figure: a label and its formatted value.
    public struct Fact: Sendable, Equatable {
        public var label: String
        public var value: String
        public init(_ label: String, _ value: String) {
            self.label = label
            self.value = value
        }
    }

    public var title: String
    /// The profiles to draw, in legend order.
    public var profiles: [ValueProfile]
    /// Drawn dashed, first; distances of every other profile to it are tabled.
    public var target: ValueProfile?
    public var facts: [Fact]
    public var notes: [String]

    public init(title: String, profiles: [ValueProfile], target: ValueProfile? = nil, facts: [Fact] = [], notes: [String] = []) {
        self.title = title
        self.profiles = profiles
        self.target = target
        self.facts = facts
        self.notes = notes
    }

    /// The HTML page for these profiles.
    public static func html(
        title: String, profiles: [ValueProfile], target: ValueProfile? = nil, facts: [Fact] = [], notes: [String] = []
    ) -> String {
        ProfileReport(title: title, profiles: profiles, target: target, facts: facts, notes: notes).html()
    }

    /// The Markdown summary for these profiles.
    public static func markdown(
        title: String, profiles: [ValueProfile], target: ValueProfile? = nil, facts: [Fact] = [], notes: [String] = []
    ) -> String {
        ProfileReport(title: title, profiles: profiles, target: target, facts: facts, notes: notes).markdown()
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]

    /// Everything drawn, target first, each with its colour and whether it is the target.
    var drawn: [(profile: ValueProfile, colour: String, isTarget: Bool)] {
        var result: [(ValueProfile, String, Bool)] = []
        if let target { result.append((target, "#444444", true)) }
        for (i, p) in profiles.enumerated() { result.append((p, Self.palette[i % Self.palette.count], false)) }
        return result
    }

    // MARK: - HTML

    /// The page.
    public func html() -> String {
        var out = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(HTML.escape(title))</title>
            <style>
            body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 980px; color: #222; padding: 0 1em; }
            h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
            table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
            th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: right; }
            th:first-child, td:first-child { text-align: left; }
            .facts td:last-child { font-weight: 600; font-variant-numeric: tabular-nums; }
            .legend span { display: inline-block; margin-right: 1.2em; }
            .swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.3em; vertical-align: -0.1em; border-radius: 2px; }
            .charts { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
            svg text { font-size: 11px; fill: #333; }
            .grid { fill: none; stroke: #ddd; } .grid.zero { stroke: #999; stroke-dasharray: 3 3; }
            .axis { stroke: #ccc; } svg text.ring { font-size: 9px; fill: #888; }
            .profile-shape { fill-opacity: 0.12; stroke-width: 2; }
            .profile-shape.target { fill-opacity: 0.04; stroke-dasharray: 6 4; }
            .ci { stroke: #222; stroke-width: 1.2; }
            .muted { color: #666; font-size: 0.9em; }
            </style>
            </head>
            <body>
            <h1>\(HTML.escape(title))</h1>

            """
        if !facts.isEmpty {
            out += "<table class=\"facts\">\n"
            for f in facts { out += "<tr><td>\(HTML.escape(f.label))</td><td>\(HTML.escape(f.value))</td></tr>\n" }
            out += "</table>\n"
        }
        out += "<p class=\"legend\">"
        for d in drawn {
            let role = d.isTarget ? " (target)" : " (\(d.profile.kind.rawValue)\(d.profile.sampleCount.map { ", n = \($0)" } ?? ""))"
            out += "<span><span class=\"swatch\" style=\"background:\(d.colour)\"></span>\(HTML.escape(d.profile.name))\(HTML.escape(role))</span>"
        }
        out += "</p>\n<div class=\"charts\">\n\(radarSVG())\n\(barsSVG())\n</div>\n"
        out += tableHTML()
        if let target { out += distanceHTML(target) }
        let sources = drawn.filter { $0.profile.source != nil || $0.profile.notes != nil }
        if !sources.isEmpty {
            out += "<h2>Sources</h2>\n<ul>\n"
            for d in sources {
                let text = [d.profile.source, d.profile.notes].compactMap { $0 }.joined(separator: " ")
                out += "<li><b>\(HTML.escape(d.profile.name))</b>: \(HTML.escape(text))</li>\n"
            }
            out += "</ul>\n"
        }
        if !notes.isEmpty {
            out += "<h2>Notes</h2>\n<ul>\n" + notes.map { "<li>\(HTML.escape($0))</li>\n" }.joined() + "</ul>\n"
        }
        out += "<details><summary>The ten values</summary>\n<dl>\n"
        for v in SchwartzValue.allCases {
            out += "<dt><b>\(HTML.escape(v.displayName))</b> <span class=\"muted\">(\(HTML.escape(v.higherOrder.map(\.displayName).joined(separator: ", "))))</span></dt><dd>\(HTML.escape(v.definition))</dd>\n"
        }
        out += "</dl>\n</details>\n</body>\n</html>\n"
        return out
    }

    /// Radar chart: axes in circumplex order from the top, clockwise; radius maps -1 to the
    /// centre, 0 to the dashed middle ring and +1 to the rim. Public so that other pages (the
    /// guard's dashboard) can embed it; they style the classes `grid`, `axis`, `ring` and
    /// `profile-shape` (`target`) as `html()` does.
    public func radarSVG() -> String {
        let size = 480.0, c = size / 2, radius = 160.0
        let values = SchwartzValue.circumplexOrder
        func angle(_ i: Double) -> Double { -Double.pi / 2 + 2 * Double.pi * i / Double(values.count) }
        func point(_ i: Int, _ x: Double) -> (Double, Double) {
            let r = radius * (max(-1, min(1, x)) + 1) / 2
            return (c + r * cos(angle(Double(i))), c + r * sin(angle(Double(i))))
        }
        var svg = "<svg class=\"radar\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(size))\" height=\"\(n(size))\" viewBox=\"0 0 \(n(size)) \(n(size))\" role=\"img\" aria-label=\"Radar chart of the value profiles\">\n"
        for level in [-0.5, 0, 0.5, 1] {
            svg += "<circle class=\"grid\(level == 0 ? " zero" : "")\" cx=\"\(n(c))\" cy=\"\(n(c))\" r=\"\(n(radius * (level + 1) / 2))\"/>\n"
        }
        for (i, v) in values.enumerated() {
            let (x, y) = point(i, 1)
            svg += "<line class=\"axis\" x1=\"\(n(c))\" y1=\"\(n(c))\" x2=\"\(n(x))\" y2=\"\(n(y))\"/>\n"
            // Labels just outside the rim; pushed down below the centre and up above it so they
            // clear the rim, anchored away from the circle on the sides.
            let a = angle(Double(i)), lx = c + (radius + 12) * cos(a), ly = c + (radius + 12) * sin(a)
            let anchor = abs(cos(a)) < 0.2 ? "middle" : (cos(a) < 0 ? "end" : "start")
            let dy = sin(a) > 0.2 ? 12.0 : (sin(a) < -0.2 ? -4.0 : 4.0)
            svg += "<text x=\"\(n(lx))\" y=\"\(n(ly + dy))\" text-anchor=\"\(anchor)\">\(HTML.escape(v.displayName))</text>\n"
        }
        // Ring values along the bisector between the first two axes, clear of the labels.
        let ringAngle = angle(0.5)
        for label in [("-0.5", -0.5), ("0", 0.0), ("+0.5", 0.5), ("+1", 1.0)] {
            let r = radius * (label.1 + 1) / 2
            svg += "<text class=\"ring\" x=\"\(n(c + r * cos(ringAngle) + 2))\" y=\"\(n(c + r * sin(ringAngle) - 2))\">\(label.0)</text>\n"
        }
        for d in drawn {
            let points = values.enumerated().map { i, v in
                let (x, y) = point(i, d.profile[v])
                return "\(n(x)),\(n(y))"
            }.joined(separator: " ")
            svg += "<polygon class=\"profile-shape\(d.isTarget ? " target" : "")\" points=\"\(points)\" fill=\"\(d.colour)\" stroke=\"\(d.colour)\"><title>\(HTML.escape(d.profile.name))</title></polygon>\n"
        }
        return svg + "</svg>"
    }

    /// Horizontal bars per value, one per profile, from 0 to the component, with the
    /// confidence interval as a whisker where the profile has one.
    func barsSVG() -> String {
        let all = drawn
        let labelWidth = 110.0, plotWidth = 360.0, barHeight = 9.0, gap = 12.0
        let groupHeight = Double(all.count) * barHeight + gap
        let top = 20.0, height = top + groupHeight * Double(SchwartzValue.allCases.count) + 10
        let width = labelWidth + plotWidth + 30
        func x(_ v: Double) -> Double { labelWidth + plotWidth * (max(-1, min(1, v)) + 1) / 2 }
        var svg = "<svg class=\"bars\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(width))\" height=\"\(n(height))\" viewBox=\"0 0 \(n(width)) \(n(height))\" role=\"img\" aria-label=\"Per-value components with confidence intervals\">\n"
        for tick in [-1.0, -0.5, 0, 0.5, 1] {
            svg += "<line class=\"grid\(tick == 0 ? " zero" : "")\" x1=\"\(n(x(tick)))\" y1=\"\(n(top - 4))\" x2=\"\(n(x(tick)))\" y2=\"\(n(height - 8))\"/>\n"
            svg += "<text x=\"\(n(x(tick)))\" y=\"\(n(top - 8))\" text-anchor=\"middle\">\(tick > 0 ? "+" : "")\(tick == 0 ? "0" : format(tick, 1))</text>\n"
        }
        for (row, v) in SchwartzValue.allCases.enumerated() {
            let y0 = top + Double(row) * groupHeight
            svg += "<text x=\"\(n(labelWidth - 6))\" y=\"\(n(y0 + Double(all.count) * barHeight / 2 + 4))\" text-anchor=\"end\">\(HTML.escape(v.displayName))</text>\n"
            for (k, d) in all.enumerated() {
                let value = d.profile[v]
                let y = y0 + Double(k) * barHeight
                let x0 = min(x(0), x(value)), w = abs(x(value) - x(0))
                svg += "<rect class=\"bar\" x=\"\(n(x0))\" y=\"\(n(y + 1))\" width=\"\(n(w))\" height=\"\(n(barHeight - 2))\" fill=\"\(d.colour)\" fill-opacity=\"\(d.isTarget ? "0.35" : "0.8")\"><title>\(HTML.escape(d.profile.name)): \(format(value, 3))</title></rect>\n"
                if let ci = d.profile.intervals[v] {
                    let ym = y + barHeight / 2
                    svg += "<path class=\"ci\" d=\"M\(n(x(ci.lower))),\(n(ym))H\(n(x(ci.upper)))M\(n(x(ci.lower))),\(n(ym - 3))V\(n(ym + 3))M\(n(x(ci.upper))),\(n(ym - 3))V\(n(ym + 3))\"><title>\(HTML.escape(d.profile.name)) \(HTML.escape(v.displayName)) CI [\(format(ci.lower, 3)), \(format(ci.upper, 3))]</title></path>\n"
                }
            }
        }
        return svg + "</svg>"
    }

    func cell(_ p: ValueProfile, _ v: SchwartzValue) -> String {
        guard let ci = p.intervals[v] else { return format(p[v], 3) }
        return "\(format(p[v], 3)) [\(format(ci.lower, 3)), \(format(ci.upper, 3))]"
    }

    func tableHTML() -> String {
        let all = drawn
        let level = all.compactMap(\.profile.confidenceLevel).first
        var out = "<h2>Figures</h2>\n"
        if let level { out += "<p class=\"muted\">Mean per value; brackets: \(format(level * 100, 0))% bootstrap confidence interval.</p>\n" }
        out += "<table>\n<tr><th>Value</th>" + all.map { "<th>\(HTML.escape($0.profile.name))</th>" }.joined() + "</tr>\n"
        for v in SchwartzValue.allCases {
            out += "<tr><td>\(HTML.escape(v.displayName))</td>" + all.map { "<td>\(HTML.escape(cell($0.profile, v)))</td>" }.joined() + "</tr>\n"
        }
        return out + "</table>\n"
    }

    func distanceHTML(_ target: ValueProfile) -> String {
        var out = "<h2>Distance to \(HTML.escape(target.name))</h2>\n<p class=\"muted\">Distances of each profile's mean vector to the target. BaseAlign's masked distance is per answer only (a mean falls under its mask); weighted is the same L1 without the mask.</p>\n"
        out += "<table>\n<tr><th>Profile</th>" + ValueDistance.profileMetrics.map { "<th>\($0.rawValue)</th>" }.joined() + "</tr>\n"
        for p in profiles {
            out += "<tr><td>\(HTML.escape(p.name))</td>" + ValueDistance.profileMetrics.map { "<td>\(format($0.distance(p.vector, to: target.vector), 3))</td>" }.joined() + "</tr>\n"
        }
        return out + "</table>\n"
    }

    // MARK: - Markdown

    /// The Markdown summary: facts, the per-value table, distances to the target, notes.
    public func markdown() -> String {
        let all = drawn
        var out = "# \(mdEscape(title))\n\n"
        if !facts.isEmpty {
            out += facts.map { "- **\(mdEscape($0.label))**: \(mdEscape($0.value))" }.joined(separator: "\n") + "\n\n"
        }
        out += "| Value | " + all.map { mdCell($0.profile.name + ($0.isTarget ? " (target)" : "")) }.joined(separator: " | ") + " |\n"
        out += "|---|" + String(repeating: "---:|", count: all.count) + "\n"
        for v in SchwartzValue.allCases {
            out += "| \(v.displayName) | " + all.map { cell($0.profile, v) }.joined(separator: " | ") + " |\n"
        }
        if let level = all.compactMap(\.profile.confidenceLevel).first {
            out += "\nBrackets: \(format(level * 100, 0))% bootstrap confidence intervals"
            let counts = all.compactMap { d in d.profile.sampleCount.map { "\(mdEscape(d.profile.name)) n = \($0)" } }
            out += counts.isEmpty ? ".\n" : " (\(counts.joined(separator: ", "))).\n"
        }
        if let target {
            out += "\n## Distance to \(mdEscape(target.name))\n\n| Profile | " + ValueDistance.profileMetrics.map(\.rawValue).joined(separator: " | ") + " |\n"
            out += "|---|" + String(repeating: "---:|", count: ValueDistance.profileMetrics.count) + "\n"
            for p in profiles {
                out += "| \(mdCell(p.name)) | " + ValueDistance.profileMetrics.map { format($0.distance(p.vector, to: target.vector), 3) }.joined(separator: " | ") + " |\n"
            }
        }
        if !notes.isEmpty { out += "\n" + notes.map { "- \(mdEscape($0))" }.joined(separator: "\n") + "\n" }
        return out
    }
}

/// Markdown inline text: emphasis, code and table characters are backslash-escaped (brackets
/// are left alone: without a following "(url)" they make no link), and HTML
/// is neutralised since many renderers pass it through.
func mdEscape(_ s: String) -> String {
    var out = ""
    for ch in s {
        switch ch {
        case "\\", "`", "*", "_", "|": out += "\\\(ch)"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\n", "\r": out += " "
        default: out.append(ch)
        }
    }
    return out
}

func mdCell(_ s: String) -> String { mdEscape(s) }

/// A coordinate with two decimals.
private func n(_ x: Double) -> String { format(x, 2) }
