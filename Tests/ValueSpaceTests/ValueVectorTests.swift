import Foundation
import Testing
import ValueSpace

@Suite struct ValueVectorTests {
    @Test func orderAndNames() {
        #expect(SchwartzValue.allCases.map(\.rawValue) == ["self_direction", "stimulation", "hedonism", "achievement", "power", "security", "tradition", "conformity", "benevolence", "universalism"])
        #expect(SchwartzValue(name: "Self-Direction") == .selfDirection)
        #expect(SchwartzValue(name: " universalism ") == .universalism)
        #expect(SchwartzValue(name: "humility") == nil)
    }

    @Test func jsonRoundTripAndErrors() throws {
        let v = try ValueVector([.security: 1, .benevolence: -0.5])
        let data = try JSONEncoder().encode(v)
        #expect(try JSONDecoder().decode(ValueVector.self, from: data) == v)
        #expect(try JSONDecoder().decode(ValueVector.self, from: Data("[0,0,0,0,0,1,0,0,-0.5,0]".utf8)) == v)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ValueVector.self, from: Data("{\"humility\": 1}".utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ValueVector.self, from: Data("{\"power\": 1.5}".utf8)) }
        #expect(throws: ValueSpaceError.invalidVector("power = 2.0 is outside [-1, 1]")) { try ValueVector([.power: 2]) }
    }
}
