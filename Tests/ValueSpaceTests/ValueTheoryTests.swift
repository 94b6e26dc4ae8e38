import Testing
import ValueSpace

@Suite struct ValueTheoryTests {
    @Test func definitionsAreWrittenForEveryValue() {
        for v in SchwartzValue.allCases {
            #expect(v.definition.count > 40, "\(v)")
            #expect(!v.displayName.isEmpty)
        }
        #expect(Set(SchwartzValue.allCases.map(\.definition)).count == 10)
    }

    @Test func circumplexNeighbours() {
        #expect(SchwartzValue.circumplexOrder.count == 10)
        #expect(SchwartzValue.selfDirection.neighbours == [.universalism, .stimulation])
        #expect(SchwartzValue.tradition.neighbours == [.security, .conformity])
        #expect(SchwartzValue.conformity.neighbours == [.tradition, .benevolence])
        for v in SchwartzValue.allCases {
            #expect(v.neighbours.count == 2)
            for w in v.neighbours { #expect(w.neighbours.contains(v), "neighbourhood is symmetric") }
            #expect(v.circumplexDistance(to: v) == 0)
        }
        #expect(SchwartzValue.power.circumplexDistance(to: .universalism) == 5)
        #expect(SchwartzValue.universalism.circumplexDistance(to: .selfDirection) == 1)
        #expect(SchwartzValue.stimulation.circumplexDistance(to: .tradition) == 5)
    }

    @Test func higherOrderGroups() {
        #expect(SchwartzValue.hedonism.higherOrder == [.opennessToChange, .selfEnhancement])
        for v in SchwartzValue.allCases where v != .hedonism { #expect(v.higherOrder.count == 1, "\(v)") }
        let covered = HigherOrderValue.allCases.flatMap(\.members)
        #expect(Set(covered) == Set(SchwartzValue.allCases))
        #expect(covered.count == 11, "hedonism counted twice")
        for g in HigherOrderValue.allCases {
            #expect(g.opposite.opposite == g && g.opposite != g)
            // Members of a group are contiguous on the circle.
            let idx = g.members.map(\.index)
            #expect(zip(idx, idx.dropFirst()).allSatisfy { $1 - $0 == 1 })
        }
        let v = try! ValueVector([.benevolence: 1, .universalism: 0.5, .power: -0.3])
        #expect(abs(v.mean(of: .selfTranscendence) - 0.75) < 1e-12)
        #expect(abs(v.mean(of: .selfEnhancement) - (-0.1)) < 1e-12)
    }
}
