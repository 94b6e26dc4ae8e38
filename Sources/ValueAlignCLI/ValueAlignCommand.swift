public import ArgumentParser
import MLXEngine

/// The `valuealign` command: its subcommands live in this target so that tests can parse their
/// arguments and read their errors (Tests/ValueAlignCLITests); the executable only calls `start`.
public struct ValueAlignCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "valuealign",
        abstract: "Measure and align the values of language models.",
        version: "0.1.0",
        subcommands: [ChatCommand.self, GenerateCommand.self, EvaluateCommand.self, AlignCommand.self, CompareCommand.self, ModelsCommand.self, ProfileCommand.self, EvaluatorCommand.self, RMCommand.self, BenchCommand.self, ServeCommand.self, AuditCommand.self, RefusalCheckCommand.self, OrganismsCommand.self, StressTestCommand.self, RedTeamCommand.self, TriggerSearchCommand.self, ExportCommand.self, AuditDataCommand.self, ProbeCommand.self, SteerCommand.self, JudgeCommand.self, DebateCommand.self, ConstitutionCommand.self, CAICommand.self, EngineInfoCommand.self]
    )

    public init() {}

    /// The tool's entry point: tunes OpenBLAS's kernels (re-executing once if needed), then parses
    /// the process's arguments and runs the chosen subcommand; errors print as ArgumentParser
    /// prints them and set the exit code. (Not named `main`: from main.swift that name resolves to
    /// ParsableCommand's synchronous `main()`, which runs an async command's default `run()`, its
    /// help text.)
    public static func start() async {
        // OpenBLAS picks its kernels when it loads; on CPUs it does not know, ask for the right
        // ones by re-executing once (BLASCore explains why).
        BLASCore.reexecWithTunedBLASIfNeeded()
        do {
            try await run(arguments: nil)
        } catch {
            exit(withError: error)
        }
    }

    /// Parses `arguments` (nil: the process's) and runs the chosen subcommand, awaiting an async
    /// one's `run()`.
    public static func run(arguments: [String]?) async throws {
        var command = try parseAsRoot(arguments)
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    }
}
