import Foundation

/// Runs blocking work (a model's forward passes, a training step) on a thread of its own with an
/// 8 MiB stack, never on Swift's cooperative pool, and returns its result to the awaiting task.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
