// The command-line tool: every command lives in ValueAlignCLI.
import ValueAlignCLI

await ValueAlignCommand.start()
