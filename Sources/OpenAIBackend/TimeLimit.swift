import Foundation

/// The last time data arrived; a watchdog reads it to tell a stalled stream from a slow one.
final class ActivityClock: @unchecked Sendable {
    private let lock = NSLock()
    private var last = ContinuousClock.now

    /// Data just arrived.
    func touch() {
        lock.lock(); defer { lock.unlock() }
        last = .now
    }

    var lastActivity: ContinuousClock.Instant {
        lock.lock(); defer { lock.unlock() }
        return last
    }
}

/// Thrown by `withTimeLimit` when the operation ran out of time; the caller turns it into a
/// message that says which limit and what was going on.
struct TimeLimitExceeded: Error {}

/// Runs `operation`, cancelling it and throwing `TimeLimitExceeded` when `limit` has passed since
/// the operation started or, with an `activity` clock, since it last touched the clock (an idle
/// time-out). Cancellation of the caller cancels the operation and throws `CancellationError`.
func withTimeLimit<T: Sendable>(
    _ limit: Duration, activity: ActivityClock = ActivityClock(),
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            while true {
                let deadline = activity.lastActivity + limit
                if ContinuousClock.now >= deadline { throw TimeLimitExceeded() }
                try await Task.sleep(until: deadline, clock: .continuous)
            }
        }
        defer { group.cancelAll() }
        do {
            // The first task to end decides: the operation's value or error, or the watchdog's.
            guard let value = try await group.next() else { throw CancellationError() }
            guard let value else { throw CancellationError() }
            return value
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw error
        }
    }
}
