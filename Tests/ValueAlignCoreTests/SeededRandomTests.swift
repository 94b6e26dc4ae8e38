import Testing
import ValueAlignCore

@Suite struct SeededRandomTests {
    /// The published SplitMix64 stream for seed 0 (Vigna's reference implementation).
    @Test func streamMatchesTheReference() {
        var g = SplitMix64(seed: 0)
        #expect(g.next() == 0xE220_A839_7B1D_CDAF)
        #expect(g.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(g.next() == 0x06C4_5D18_8009_454F)
    }

    @Test func unitAndIndexStayInRange() {
        var g = SplitMix64(seed: 9)
        for _ in 0..<10_000 {
            let u = g.nextUnit()
            #expect(u >= 0 && u < 1)
            let i = g.index(below: 7)
            #expect(i >= 0 && i < 7)
            let x = g.uniform(-2, 3)
            #expect(x >= -2 && x < 3)
        }
    }

    @Test func permutationIsSeededFisherYates() {
        let a = SplitMix64.permutation(count: 50, seed: 3)
        #expect(a.sorted() == Array(0..<50))
        #expect(a == SplitMix64.permutation(count: 50, seed: 3))
        #expect(a != SplitMix64.permutation(count: 50, seed: 4))
        #expect(a != Array(0..<50))
        // The same as shuffling by hand with next() % (i + 1) from the last position down: resumed
        // runs depend on this exact order.
        var manual = Array(0..<50), g = SplitMix64(seed: 3)
        for i in stride(from: 49, to: 0, by: -1) { manual.swapAt(i, Int(g.next() % UInt64(i + 1))) }
        #expect(a == manual)
        #expect(SplitMix64.permutation(count: 0, seed: 1).isEmpty)
        #expect(SplitMix64.permutation(count: 1, seed: 1) == [0])
    }

    @Test func derivedSeedsDependOnEveryCounter() {
        let base = SplitMix64.derive(42, 1, 2)
        #expect(base == SplitMix64.derive(42, 1, 2))
        #expect(base != SplitMix64.derive(42, 2, 1))
        #expect(base != SplitMix64.derive(43, 1, 2))
        #expect(base != SplitMix64.derive(42, 1))
        #expect(SplitMix64.mix(1, 2) != SplitMix64.mix(2, 1))
    }
}

@Suite struct TextHelperTests {
    @Test func htmlEscapesEveryMarkupCharacter() {
        #expect(HTML.escape(#"<a href="x">Tom & 'Jerry'</a>"#) == "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;")
        #expect(HTML.escape("plain ünïcode") == "plain ünïcode")
    }

    @Test func durationsParseFormatAndClock() throws {
        #expect(try DurationText.seconds("15m") == 900)
        #expect(try DurationText.seconds("1h30m") == 5400)
        #expect(try DurationText.seconds("90s") == 90)
        #expect(try DurationText.seconds("42") == 42)
        for bad in ["", "m", "15x", "-3", "1h30", "0"] {
            #expect(throws: DurationTextError(text: bad)) { try DurationText.seconds(bad) }
        }
        #expect(DurationText.format(754) == "12m34s")
        #expect(DurationText.format(3700) == "1h01m")
        #expect(DurationText.format(42) == "42s")
        #expect(DurationText.clock(75) == "1:15")
        #expect(DurationText.clock(3723) == "1:02:03")
    }
}
