import LanguageModels
import Testing

@Suite struct GenerationParametersTests {
    @Test func defaultsAreValidAndGreedy() throws {
        try GenerationParameters().validate()
        #expect(GenerationParameters.greedy.temperature == 0)
    }

    @Test(arguments: [
        ("maxTokens", GenerationParameters(maxTokens: -1)),
        ("temperature", GenerationParameters(temperature: -0.5)),
        ("temperature", GenerationParameters(temperature: .nan)),
        ("topK", GenerationParameters(topK: -2)),
        ("topP", GenerationParameters(topP: 0)),
        ("topP", GenerationParameters(topP: 1.5)),
        ("minP", GenerationParameters(minP: 1)),
        ("repetitionPenalty", GenerationParameters(repetitionPenalty: 0)),
        ("stop", GenerationParameters(stop: ["", "x"])),
    ])
    func rejectsOutOfRange(field: String, parameters: GenerationParameters) {
        #expect {
            try parameters.validate()
        } throws: { error in
            guard case let .invalidParameter(f, _) = error as? LanguageModelError else { return false }
            return f == field
        }
    }
}
