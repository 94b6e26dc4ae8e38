import Dispatch
import Foundation
import LanguageModels

/// Ctrl-C for long jobs: the first press sets a flag that the job checks at its next safe point
/// (a step, a round), so it stops with a checkpoint instead of dying mid-write.
/// (DispatchSource is thread-safe but not marked Sendable on Linux.)
final class Interrupt: @unchecked Sendable {
    let flag = CancellationFlag()
    private let source: any DispatchSourceSignal

    /// Catches SIGINT until `stop()`, printing `message` on the first press.
    init(message: String) {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        let flag = flag
        source.setEventHandler {
            flag.cancel()
            FileHandle.standardError.write(Data("\n\(message)\n".utf8))
        }
        source.resume()
    }

    /// Whether Ctrl-C was pressed.
    var isRequested: Bool { flag.isCancelled }

    /// Stops catching SIGINT.
    func stop() { source.cancel() }
}
