import ArgumentParser
import Foundation
import ValueSpace

/// `valuealign profile ...`: value profiles (presets and files), their distances and reports.
struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Show, compare and measure distances between value profiles (built-in presets or JSON files; see docs/profile-format.md).",
        subcommands: [List.self, Show.self, Compare.self, Distance.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the built-in profiles.")

        @Flag(help: "Print JSON (every preset in full).") var json = false

        func run() throws {
            let presets = try ProfileStore.presets()
            let names = try ProfileStore.presetNames()
            if json {
                print(try jsonString(names.map { presets[$0]! }))
                return
            }
            let width = names.map(\.count).max() ?? 0
            for name in names {
                let p = presets[name]!
                let marker = name == ProfileStore.defaultTargetName ? " (default target)" : ""
                print("\(name.padding(toLength: width, withPad: " ", startingAt: 0))  \(p.kind.rawValue)\(marker)")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print one profile.")

        @Argument(help: "A preset name or a profile JSON file.") var profile: String
        @Flag(help: "Print the profile as JSON.") var json = false

        func run() throws {
            let p = try ProfileStore.resolve(profile)
            if json {
                print(String(decoding: try p.jsonData(), as: UTF8.self))
                return
            }
            var header = "\(p.name) (\(p.kind.rawValue)"
            if let n = p.sampleCount { header += ", n = \(n)" }
            print(header + ")")
            if let source = p.source { print("source: \(source)") }
            if let notes = p.notes { print("notes: \(notes)") }
            for v in SchwartzValue.allCases {
                var line = "  \(v.displayName.padding(toLength: 14, withPad: " ", startingAt: 0)) \(signed(p[v]))"
                if let ci = p.intervals[v] { line += "  [\(fixed(ci.lower)), \(fixed(ci.upper))]" }
                print(line)
            }
            if let level = p.confidenceLevel, !p.intervals.isEmpty { print("intervals: \(fixed(level * 100, 0))% confidence") }
        }
    }

    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare two profiles side by side, with their distances; optionally write an HTML or Markdown report.")

        @Argument(help: "First profile (preset name or file).") var a: String
        @Argument(help: "Second profile (preset name or file).") var b: String
        @Option(help: "Write an HTML report (radar and bar charts) to this file.") var html: String?
        @Option(help: "Write a Markdown summary to this file.") var markdown: String?

        func run() throws {
            let pa = try ProfileStore.resolve(a), pb = try ProfileStore.resolve(b)
            let width = max(14, pa.name.count, pb.name.count)
            func pad(_ s: String) -> String { s.padding(toLength: width, withPad: " ", startingAt: 0) }
            print("\(pad("value"))  \(pad(pa.name))  \(pad(pb.name))  difference")
            for v in SchwartzValue.allCases {
                print("\(pad(v.displayName))  \(pad(signed(pa[v])))  \(pad(signed(pb[v])))  \(signed(pa[v] - pb[v]))")
            }
            let facts = ValueDistance.allCases.map {
                ProfileReport.Fact("\($0.rawValue) distance from \(pa.name) to \(pb.name)", fixed($0.distance(pa.vector, to: pb.vector)))
            }
            for f in facts { print("\(f.label): \(f.value)") }
            // Exactly one target among the two: draw it as the target; otherwise two peers.
            let report: ProfileReport
            if pb.kind == .target && pa.kind != .target {
                report = ProfileReport(title: "\(pa.name) vs \(pb.name)", profiles: [pa], target: pb, facts: facts)
            } else if pa.kind == .target && pb.kind != .target {
                report = ProfileReport(title: "\(pa.name) vs \(pb.name)", profiles: [pb], target: pa, facts: facts)
            } else {
                report = ProfileReport(title: "\(pa.name) vs \(pb.name)", profiles: [pa, pb], facts: facts)
            }
            if let html {
                try report.html().write(toFile: html, atomically: true, encoding: .utf8)
                print("wrote \(html)")
            }
            if let markdown {
                try report.markdown().write(toFile: markdown, atomically: true, encoding: .utf8)
                print("wrote \(markdown)")
            }
        }
    }

    struct Distance: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the distance from profile A to profile B (BaseAlign's is not symmetric: B is the target).")

        @Argument(help: "The profile measured (preset name or file).") var a: String
        @Argument(help: "The target (preset name or file).") var b: String
        @Option(help: "Metric: \(ValueDistance.allCases.map(\.rawValue).joined(separator: ", ")).") var metric = "basealign"

        func validate() throws {
            guard ValueDistance(rawValue: metric) != nil else {
                throw ValidationError("--metric must be one of \(ValueDistance.allCases.map(\.rawValue).joined(separator: ", ")), got '\(metric)'")
            }
        }

        func run() throws {
            let pa = try ProfileStore.resolve(a), pb = try ProfileStore.resolve(b)
            print(fixed(ValueDistance(rawValue: metric)!.distance(pa.vector, to: pb.vector), 4))
        }
    }
}

private func fixed(_ x: Double, _ digits: Int = 3) -> String {
    let s = String(format: "%.\(digits)f", x)
    return s.hasPrefix("-") && s.dropFirst().allSatisfy { $0 == "0" || $0 == "." } ? String(s.dropFirst()) : s
}

/// A fixed-point figure with a space where a positive number's sign would be, so columns align.
private func signed(_ x: Double) -> String {
    let s = fixed(x)
    return s.hasPrefix("-") ? s : " " + s
}

private func jsonString<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
