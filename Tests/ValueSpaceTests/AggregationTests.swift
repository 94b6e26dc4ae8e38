import Foundation
import Testing
import ValueAlignCore
import ValueSpace

@Suite struct AggregationTests {
    @Test func coverageOfAKnownMean() throws {
        // Uniform(-1, 1) has mean 0: about 95% of the 95% intervals should contain it.
        var covered = 0
        let trials = 60
        for trial in 0..<trials {
            let samples = uniformValues(200, seed: UInt64(1000 + trial))
            let e = try ValueAggregation.mean(samples, bootstrap: BootstrapParameters(resamples: 400, seed: UInt64(trial)))
            #expect(e.count == 200 && e.lower <= e.value && e.value <= e.upper)
            if e.interval.contains(0) { covered += 1 }
        }
        let rate = Double(covered) / Double(trials)
        #expect(rate >= 0.85 && rate <= 1.0, "coverage \(rate)")
    }

    @Test func widthMatchesTheoryAndShrinksWithN() throws {
        let sigma = 1 / 3.0.squareRoot()
        var widths: [Int: Double] = [:]
        for n in [100, 400, 1600] {
            let e = try ValueAggregation.mean(uniformValues(n, seed: 7), bootstrap: BootstrapParameters(resamples: 1000))
            widths[n] = e.upper - e.lower
            let expected = 2 * 1.96 * sigma / Double(n).squareRoot()
            #expect(abs(widths[n]! / expected - 1) < 0.2, "n=\(n) width \(widths[n]!) vs \(expected)")
        }
        #expect(widths[400]! < widths[100]! && widths[1600]! < widths[400]!)
        let ratio = widths[100]! / widths[1600]!
        #expect(ratio > 3 && ratio < 5.5, "quadrupling n twice should quarter the width, got ratio \(ratio)")
    }

    @Test func seededAndValidated() throws {
        let samples = uniformValues(50, seed: 3)
        let a = try ValueAggregation.mean(samples, bootstrap: BootstrapParameters(resamples: 300, seed: 1))
        let b = try ValueAggregation.mean(samples, bootstrap: BootstrapParameters(resamples: 300, seed: 1))
        let c = try ValueAggregation.mean(samples, bootstrap: BootstrapParameters(resamples: 300, seed: 2))
        #expect(a == b)
        #expect(a.lower != c.lower || a.upper != c.upper)
        #expect(throws: ValueSpaceError.self) { try ValueAggregation.mean([]) }
        #expect(throws: ValueSpaceError.self) { try ValueAggregation.mean(samples, bootstrap: BootstrapParameters(resamples: 0)) }
        #expect(throws: ValueSpaceError.self) { try ValueAggregation.mean(samples, bootstrap: BootstrapParameters(level: 1)) }
        let one = try ValueAggregation.mean([0.25])
        #expect(one.value == 0.25 && one.lower == 0.25 && one.upper == 0.25)
    }

    static func randomVectors(_ n: Int, seed: UInt64, shift: [SchwartzValue: Double] = [:]) -> [ValueVector] {
        var g = SplitMix64(seed: seed &+ SplitMix64.increment)
        return (0..<n).map { _ in
            var c = (0..<10).map { _ in g.uniform(-0.6, 0.6) }
            for (v, s) in shift { c[v.index] = max(-1, min(1, c[v.index] + s)) }
            return try! ValueVector(c)
        }
    }

    @Test func measuredProfile() throws {
        let vectors = Self.randomVectors(300, seed: 11, shift: [.security: 0.4])
        let p = try ValueAggregation.measuredProfile(name: "m", vectors: vectors, bootstrap: BootstrapParameters(resamples: 500))
        #expect(p.kind == .measured && p.sampleCount == 300 && p.confidenceLevel == 0.95)
        #expect(p.vector.components.count == 10 && p.intervals.count == 10)
        for v in SchwartzValue.allCases {
            let mean = vectors.reduce(0) { $0 + $1[v] } / 300
            #expect(abs(p[v] - mean) < 1e-12)
            let ci = try #require(p.intervals[v])
            #expect(ci.lower < mean && mean < ci.upper && ci.width < 0.12, "\(v): \(ci)")
        }
        #expect(p.intervals[.security]!.lower > 0.2, "the shifted value stands out")
        // It round-trips through the documented JSON format.
        #expect(try ValueProfile.decode(p.jsonData(), origin: "memory") == p)
        #expect(throws: ValueSpaceError.self) { try ValueAggregation.measuredProfile(name: "empty", vectors: []) }
    }

    @Test func pairedDistanceChange() throws {
        let target = try ValueVector([.security: 1, .benevolence: 1])
        let before = Self.randomVectors(400, seed: 5)
        // After: the same responses moved towards the target on security and benevolence.
        let after = before.map { v in
            var w = v
            w[.security] = v[.security] + 0.3
            w[.benevolence] = v[.benevolence] + 0.3
            return w
        }
        for metric in ValueDistance.allCases {
            let d0 = try ValueAggregation.meanDistance(before, to: target, metric: metric)
            let d1 = try ValueAggregation.meanDistance(after, to: target, metric: metric)
            let change = try ValueAggregation.distanceChange(before: before, after: after, to: target, metric: metric)
            #expect(abs(change.value - (d1.value - d0.value)) < 1e-12)
            #expect(change.value < 0 && change.excludesZero && change.upper < 0, "\(metric): \(change.formatted())")
            // Pairing removes the prompt-to-prompt spread: narrower than the interval two
            // independent means would give. (Not for BaseAlign's distance here: the shift moves
            // many components across its 0.3 mask, so per-prompt changes vary more than levels.)
            guard metric != .basealign else { continue }
            let unpaired = ((d0.upper - d0.lower) * (d0.upper - d0.lower) + (d1.upper - d1.lower) * (d1.upper - d1.lower)).squareRoot()
            #expect(change.upper - change.lower < 0.8 * unpaired, "\(metric): \(change.upper - change.lower) vs \(unpaired)")
        }
        let none = try ValueAggregation.distanceChange(before: before, after: before, to: target)
        #expect(none.value == 0 && !none.excludesZero)
        // A tiny shift buried in independent noise is not declared a change.
        let noisy = Self.randomVectors(400, seed: 99)
        let unclear = try ValueAggregation.distanceChange(before: before, after: noisy, to: target, metric: .l2)
        #expect(!unclear.excludesZero, "\(unclear.formatted())")
        #expect(throws: ValueSpaceError.self) { try ValueAggregation.distanceChange(before: before, after: Array(after.dropLast()), to: target) }
    }

    @Test func pairingByPrompt() throws {
        let a = try ValueVector([.power: 0.1]), b = try ValueVector([.power: 0.2]), c = try ValueVector([.power: 0.3])
        let before: [(prompt: String, vector: ValueVector)] = [("p", a), ("q", b), ("p", c), ("lonely", a)]
        let after: [(prompt: String, vector: ValueVector)] = [("q", c), ("p", b), ("other", a), ("p", a)]
        let paired = ValueAggregation.pairByPrompt(before: before, after: after)
        #expect(paired.before.count == 3 && paired.after.count == 3)
        #expect(paired.before == [a, b, c] && paired.after == [b, c, a])
        #expect(paired.unmatched == 2)
    }
}

@Suite struct PerplexityRatioTests {
    @Test func ratioAndPairedInterval() throws {
        let before = (0..<20).map { PerplexityWindow(nll: Double(100 + $0 * 7 % 13), tokens: 50 + $0 % 3) }
        let same = try ValueAggregation.perplexityRatio(before: before, after: before, bootstrap: BootstrapParameters(resamples: 300))
        #expect(same.value == 1 && same.lower == 1 && same.upper == 1)
        // Every window's NLL up by ln 2 per token: the perplexity doubles, in every resample.
        let doubled = before.map { PerplexityWindow(nll: $0.nll + Double($0.tokens) * log(2), tokens: $0.tokens) }
        let two = try ValueAggregation.perplexityRatio(before: before, after: doubled, bootstrap: BootstrapParameters(resamples: 300))
        #expect(abs(two.value - 2) < 1e-9 && abs(two.lower - 2) < 1e-9 && abs(two.upper - 2) < 1e-9)
        // Uneven changes: the interval brackets the point estimate and has width.
        let uneven = before.enumerated().map { i, w in PerplexityWindow(nll: w.nll + (i % 2 == 0 ? 10 : -2), tokens: w.tokens) }
        let e = try ValueAggregation.perplexityRatio(before: before, after: uneven, bootstrap: BootstrapParameters(resamples: 500))
        #expect(e.lower < e.value && e.value < e.upper && e.count == 20)
        #expect(throws: ValueSpaceError.self) { try ValueAggregation.perplexityRatio(before: before, after: Array(before.dropLast())) }
        #expect(throws: ValueSpaceError.self) { try ValueAggregation.perplexityRatio(before: [], after: []) }
    }
}
