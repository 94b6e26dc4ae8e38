import Dispatch
import Foundation
import Synchronization

/// A `ChatBackend` over a local model. All model work runs on one private serial queue, off
/// Swift's cooperative thread pool; `completeBatch` generates the whole batch at once.
public final class LocalChatBackend: ChatBackend, @unchecked Sendable {
    public let loaded: LoadedModel
    private let queue = DispatchQueue(label: "valuealign.local-model", qos: .userInitiated)

    /// Reads the activations of every batch and single completion (`ChatCompletion.monitorReading`);
    /// streams are not observed.
    private let observer: (any ActivationObserver)?

    public init(_ loaded: LoadedModel, observer: (any ActivationObserver)? = nil) {
        self.loaded = loaded
        self.observer = observer
    }

    public var modelName: String { loaded.name }

    /// Runs `body` on the model's queue. Cancelling the calling task sets the flag handed to
    /// `body`, which long work polls.
    public func perform<T: Sendable>(_ body: @escaping @Sendable (LoadedModel, CancellationFlag) throws -> T) async throws -> T {
        let flag = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                queue.async { [loaded] in
                    continuation.resume(with: Result { try body(loaded, flag) })
                }
            }
        } onCancel: {
            flag.cancel()
        }
    }

    public func complete(_ messages: [ChatMessage], parameters: GenerationParameters) async throws -> ChatCompletion {
        try await completeBatch([messages], parameters: parameters)[0]
    }

    public func completeBatch(_ conversations: [[ChatMessage]], parameters: GenerationParameters) async throws -> [ChatCompletion] {
        try parameters.validate()
        return try await perform { [self] loaded, flag in
            let prompts = conversations.map { loaded.promptTokens($0) }
            let generator = loaded.makeGenerator()
            // The observer is only ever used here, on the model's serial queue.
            generator.observer = observer
            let results = try generator.generate(prompts, parameters: parameters, onText: { _, _ in !flag.isCancelled })
            return try results.enumerated().map { i, r in
                ChatCompletion(text: r.text, finishReason: r.finishReason, promptTokens: r.promptTokens, completionTokens: r.tokens.count,
                               monitorReading: try observer?.reading(prompt: i), logProbs: r.logProbs)
            }
        }
    }

    public func stream(_ messages: [ChatMessage], parameters: GenerationParameters) -> AsyncThrowingStream<String, any Error> {
        let (stream, continuation) = AsyncThrowingStream<String, any Error>.makeStream()
        let flag = CancellationFlag()
        continuation.onTermination = { _ in flag.cancel() }
        do { try parameters.validate() } catch {
            continuation.finish(throwing: error)
            return stream
        }
        queue.async { [loaded] in
            do {
                let prompt = loaded.promptTokens(messages)
                _ = try loaded.makeGenerator().generate([prompt], parameters: parameters, onText: { _, piece in
                    continuation.yield(piece)
                    return !flag.isCancelled
                })
                continuation.finish()
            } catch is CancellationError {
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        return stream
    }
}

/// A flag set when the caller gives up; long model work polls it between steps.
public final class CancellationFlag: Sendable {
    private let state = Atomic<Bool>(false)
    public init() {}
    public func cancel() { state.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { state.load(ordering: .relaxed) }
}
