// swift-tools-version: 6.1
// ValueAlign: measure and align the values of language models.

import Foundation
import PackageDescription

// MLX comes from a PyPI wheel unpacked by `make deps` into .deps/<wheel>/mlx (headers and
// libmlx.so). The backend is chosen at build time, as mlx-swift does with SPM_CUDA:
// VALUEALIGN_MLX_BACKEND=cpu (default) uses the `mlx-cpu` wheel, =cuda the `mlx-cuda-12` wheel.
// Nothing outside this file and the bridge target changes between the two.
let environment = ProcessInfo.processInfo.environment
let backend = environment["VALUEALIGN_MLX_BACKEND"] ?? "cpu"
let packageDirectory = Context.packageDirectory
let wheelDirectory = backend == "cuda" ? "mlx-cuda-12" : "mlx-cpu"
let mlxRoot = environment["VALUEALIGN_MLX_ROOT"] ?? "\(packageDirectory)/.deps/\(wheelDirectory)/mlx"

/// Settings every Swift target shares: Swift 6 language mode is the package default; these add
/// the stricter checks we want everywhere.
let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

var bridgeDefines: [CXXSetting] = []
if backend == "cuda" { bridgeDefines.append(.define("VALUEALIGN_CUDA", to: "1")) }

let package = Package(
    name: "ValueAlign",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "valuealign", targets: ["valuealign"]),
        .library(name: "ValueAlignCore", targets: ["ValueAlignCore"]),
        .library(name: "MLXEngine", targets: ["MLXEngine"]),
        .library(name: "MLXNN", targets: ["MLXNN"]),
        .library(name: "LanguageModels", targets: ["LanguageModels"]),
        .library(name: "OpenAIBackend", targets: ["OpenAIBackend"]),
        .library(name: "ValueSpace", targets: ["ValueSpace"]),
        .library(name: "Evaluators", targets: ["Evaluators"]),
        .library(name: "Alignment", targets: ["Alignment"]),
        .library(name: "BaseAlign", targets: ["BaseAlign"]),
        .library(name: "ValueAlignServer", targets: ["ValueAlignServer"]),
        .library(name: "Oversight", targets: ["Oversight"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.20.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        // The guard server's audit log (SQLite by default, PostgreSQL when a URL is given), key
        // hashing, and YAML policy files.
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        // Thin C++ layer over mlx::core with a plain C interface. Every entry point catches every
        // C++ exception and reports it through a status code and a thread-local message, so no
        // exception can ever unwind into Swift.
        .target(
            name: "CMLXBridge",
            cxxSettings: bridgeDefines + [
                .unsafeFlags(["-I\(mlxRoot)/include", "-O3", "-fno-math-errno", "-Wno-deprecated-declarations"]),
            ],
            linkerSettings: [
                // OpenBLAS must be a direct dependency of every binary so that libmlx.so's
                // cblas_sgemm binds to it rather than to the reference BLAS the wheel bundles.
                .unsafeFlags([
                    "-L\(mlxRoot)/lib", "-Xlinker", "-rpath", "-Xlinker", "\(mlxRoot)/lib",
                    "-Xlinker", "--no-as-needed",
                ]),
                .linkedLibrary("openblas"),
                .linkedLibrary("mlx"),
                .linkedLibrary("stdc++"),
            ]
        ),
        // What every layer shares, on Foundation alone: chat messages, JSON Lines, the seeded
        // generator, HTML escaping, duration text, where the shared data lives.
        .target(name: "ValueAlignCore", swiftSettings: strictSwift),
        .target(name: "MLXEngine", dependencies: ["CMLXBridge"], swiftSettings: strictSwift),
        .target(name: "MLXNN", dependencies: ["MLXEngine"], swiftSettings: strictSwift),
        // Tokenizers, chat templates, Llama-family models, generation, scoring, LoRA adapters.
        // CMLXBridge directly: an architecture's fused CPU kernel wrapper (FastPaths) lives beside
        // the model it serves rather than in the generic engine.
        .target(name: "LanguageModels", dependencies: ["ValueAlignCore", "CMLXBridge", "MLXEngine", "MLXNN"], swiftSettings: strictSwift),
        // OpenAI-compatible HTTP ChatBackend, kept apart so the model layer builds without NIO.
        .target(
            name: "OpenAIBackend",
            dependencies: ["LanguageModels", .product(name: "AsyncHTTPClient", package: "async-http-client")],
            swiftSettings: strictSwift
        ),
        // Schwartz's ten values: vectors, profiles, distances, BaseAlign's reward, datasets, the
        // ValueEvaluator protocol. Needs no engine: it builds and tests without MLX.
        .target(
            name: "ValueSpace", dependencies: ["ValueAlignCore"],
            resources: [.copy("Profiles")],  // built-in presets, read through Bundle.module
            swiftSettings: strictSwift
        ),
        // The trained value evaluator (heads over the embedded model's hidden states); its weights
        // ship as a resource.
        .target(
            name: "Evaluators",
            dependencies: ["ValueAlignCore", "ValueSpace", "LanguageModels", "MLXNN", "MLXEngine"],
            resources: [.process("Resources")],
            swiftSettings: strictSwift
        ),
        // Trainers: the shared runner, SFT, DPO/IPO, reward models, GRPO and BaseAlign's reward.
        .target(name: "Alignment", dependencies: ["LanguageModels", "ValueSpace", "MLXNN", "MLXEngine"], swiftSettings: strictSwift),
        // `valuealign align`: measure, align (GRPO, iterated DPO/IPO, best-of-N), re-measure, report.
        .target(name: "BaseAlign", dependencies: ["ValueAlignCore", "Alignment", "LanguageModels", "ValueSpace", "MLXNN", "MLXEngine"], swiftSettings: strictSwift),
        // Scalable oversight (issue 28): judges (single, pairwise, reference; verdicts read from
        // log-probabilities), debate, and constitutional critique-and-revise data.
        .target(name: "Oversight", dependencies: ["ValueAlignCore", "ValueSpace", "LanguageModels", "Alignment", "Evaluators", "MLXEngine"], swiftSettings: strictSwift),
        // Stress tests (issue 25): deliberately misaligned model organisms and their checks.
        .target(name: "StressTest", dependencies: ["BaseAlign", "Alignment", "Evaluators", "LanguageModels", "ValueSpace", "ValueAlignCore", "ValueAlignServer", "MLXNN", "MLXEngine"], swiftSettings: strictSwift),
        // The guard server: an OpenAI-compatible proxy enforcing a value policy, with audit log,
        // dashboard and OpenRLHF-compatible reward endpoint.
        .target(
            name: "ValueAlignServer",
            dependencies: [
                "ValueAlignCore", "LanguageModels", "OpenAIBackend", "ValueSpace",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSwift
        ),
        // `valuealign audit-data`: score, filter, deduplicate and decontaminate a dataset file.
        .target(name: "DataAudit", dependencies: ["ValueAlignCore", "ValueSpace", "ValueAlignServer", "LanguageModels"], swiftSettings: strictSwift),
        .target(name: "ValueAlignTesting", dependencies: ["ValueAlignCore", "MLXEngine", "LanguageModels"], swiftSettings: strictSwift),
        // Every benchmark behind `valuealign bench ...` (the guard's load test included), in one place.
        .target(
            name: "ValueAlignBench",
            dependencies: [
                "MLXEngine", "MLXNN", "LanguageModels", "OpenAIBackend", "ValueSpace", "Evaluators", "Alignment", "ValueAlignServer", "DataAudit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strictSwift
        ),
        // The commands (parsing, validation, output); thin: each calls a library API.
        .target(
            name: "ValueAlignCLI",
            dependencies: [
                "ValueAlignCore", "MLXEngine", "MLXNN", "LanguageModels", "OpenAIBackend", "ValueSpace", "Evaluators", "Alignment", "BaseAlign",
                "ValueAlignBench", "ValueAlignServer", "StressTest", "DataAudit", "Oversight",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(name: "valuealign", dependencies: ["ValueAlignCLI"], swiftSettings: strictSwift),
        .testTarget(name: "ValueAlignCoreTests", dependencies: ["ValueAlignCore"], swiftSettings: strictSwift),
        .testTarget(name: "DataAuditTests", dependencies: ["DataAudit", "ValueAlignServer", "ValueSpace", "Evaluators", "ValueAlignCore"], swiftSettings: strictSwift),
        .testTarget(
            name: "ValueAlignCLITests",
            dependencies: ["ValueAlignCLI", "BaseAlign", "ValueSpace", "StressTest", "LanguageModels", "MLXNN", "ValueAlignTesting", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "MLXEngineTests", dependencies: ["MLXEngine", "ValueAlignTesting"], swiftSettings: strictSwift),
        .testTarget(name: "MLXNNTests", dependencies: ["MLXNN", "ValueAlignTesting"], swiftSettings: strictSwift),
        .testTarget(
            name: "LanguageModelsTests",
            dependencies: ["LanguageModels", "ValueAlignTesting"],
            exclude: ["Fixtures"],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "BaseAlignTests", dependencies: ["BaseAlign", "ValueAlignCore", "Alignment", "ValueSpace", "LanguageModels", "MLXNN", "MLXEngine", "ValueAlignTesting"], swiftSettings: strictSwift),
        .testTarget(name: "StressTestTests", dependencies: ["StressTest", "BaseAlign", "Alignment", "ValueSpace", "LanguageModels", "MLXNN", "MLXEngine", "ValueAlignTesting"], swiftSettings: strictSwift),
        .testTarget(name: "AlignmentTests", dependencies: ["Alignment", "ValueSpace", "LanguageModels", "MLXNN", "MLXEngine", "ValueAlignTesting"], swiftSettings: strictSwift),
        .testTarget(
            name: "OversightTests",
            dependencies: [
                "Oversight", "ValueAlignServer", "OpenAIBackend", "LanguageModels", "ValueSpace", "ValueAlignCore", "Evaluators", "Alignment",
                "MLXEngine", "ValueAlignTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "ValueSpaceTests", dependencies: ["ValueSpace", "ValueAlignCore"], swiftSettings: strictSwift),
        .testTarget(
            name: "EvaluatorsTests",
            dependencies: ["Evaluators", "ValueSpace", "ValueAlignCore", "LanguageModels", "MLXNN", "MLXEngine", "ValueAlignTesting"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "OpenAIBackendTests",
            dependencies: [
                "OpenAIBackend", "LanguageModels",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "ValueAlignServerTests",
            dependencies: [
                "ValueAlignServer", "LanguageModels", "OpenAIBackend", "ValueSpace", "Evaluators", "MLXEngine", "ValueAlignTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strictSwift
        ),
    ],
    cxxLanguageStandard: .cxx20
)
