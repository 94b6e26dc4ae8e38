import Foundation
import LanguageModels
import Testing

/// The integration tests on the real embedded model are enabled only where it is installed, so
/// that each shows as skipped with its reason rather than failing on a load error. This test is
/// what makes a missing model fail the run, naming how to install it.
@Suite struct EmbeddedModelPresenceTests {
    @Test func theEmbeddedModelIsInstalled() throws {
        let path = try #require(ModelLocator.embeddedModelPath(),
                                "the embedded SmolLM2 is not installed: run `make deps` (make test does), or set VALUEALIGN_MODEL to its GGUF file; the tests on the real model were skipped")
        #expect(path.hasSuffix(".gguf"))
        if let given = ProcessInfo.processInfo.environment["VALUEALIGN_MODEL"], !given.isEmpty {
            #expect(FileManager.default.fileExists(atPath: given), "VALUEALIGN_MODEL is '\(given)', which does not exist")
        }
    }
}
