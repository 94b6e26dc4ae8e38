import ArgumentParser
import Foundation
import LanguageModels

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with a model: one-shot with a prompt argument, else interactive (streaming).",
        discussion: "Interactive commands: /reset clears the conversation, /exit (or end of input) quits."
    )

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var generation: GenerationOptions

    @Option(help: "System message.") var system: String?
    @Flag(help: "Print the whole answer at the end instead of streaming it.") var noStream = false
    @Argument(help: "The message; without it, read turns from standard input.") var prompt: String?

    func run() async throws {
        let backend = try modelOptions.makeBackend()
        var history: [ChatMessage] = system.map { [.system($0)] } ?? []
        if let prompt {
            _ = try await answer(backend, history + [.user(prompt)])
            return
        }
        let interactive = isatty(STDIN_FILENO) == 1
        if interactive { FileHandle.standardError.write(Data("\(backend.modelName) — /reset, /exit\n".utf8)) }
        while true {
            if interactive { FileHandle.standardError.write(Data("> ".utf8)) }
            guard let line = readLine() else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/exit" { break }
            if text == "/reset" {
                history = system.map { [.system($0)] } ?? []
                continue
            }
            history.append(.user(text))
            let reply = try await answer(backend, history)
            history.append(.assistant(reply))
        }
    }

    func answer(_ backend: any ChatBackend, _ messages: [ChatMessage]) async throws -> String {
        if noStream {
            let c = try await backend.complete(messages, parameters: generation.parameters)
            print(c.text)
            return c.text
        }
        var text = ""
        for try await piece in backend.stream(messages, parameters: generation.parameters) {
            text += piece
            FileHandle.standardOutput.write(Data(piece.utf8))
        }
        print()
        return text
    }
}
