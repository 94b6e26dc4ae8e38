import ArgumentParser
import MLXEngine

@main
struct ValueAlignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "valuealign",
        abstract: "Measure and align the values of language models.",
        version: "0.1.0",
        subcommands: [ChatCommand.self, GenerateCommand.self, EvaluateCommand.self, AlignCommand.self, CompareCommand.self, ModelsCommand.self, ProfileCommand.self, EvaluatorCommand.self, RMCommand.self, BenchCommand.self, ServeCommand.self, AuditCommand.self, EngineInfoCommand.self]
    )

    static func main() async {
        // OpenBLAS picks its kernels when it loads; on CPUs it does not know, ask for the right
        // ones by re-executing once (BLASCore explains why).
        BLASCore.reexecWithTunedBLASIfNeeded()
        await main(nil)
    }
}
