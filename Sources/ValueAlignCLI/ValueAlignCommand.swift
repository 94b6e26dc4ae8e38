public import ArgumentParser
import MLXEngine

/// The `valuealign` command: its subcommands live in this target so that tests can parse their
/// arguments and read their errors (Tests/ValueAlignCLITests); the executable only calls `main`.
public struct ValueAlignCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "valuealign",
        abstract: "Measure and align the values of language models.",
        version: "0.1.0",
        subcommands: [ChatCommand.self, GenerateCommand.self, EvaluateCommand.self, AlignCommand.self, CompareCommand.self, ModelsCommand.self, ProfileCommand.self, EvaluatorCommand.self, RMCommand.self, BenchCommand.self, ServeCommand.self, AuditCommand.self, EngineInfoCommand.self]
    )

    public init() {}

    /// Parses the process's arguments and runs the chosen subcommand.
    public static func main() async {
        // OpenBLAS picks its kernels when it loads; on CPUs it does not know, ask for the right
        // ones by re-executing once (BLASCore explains why).
        BLASCore.reexecWithTunedBLASIfNeeded()
        await main(nil)
    }
}
