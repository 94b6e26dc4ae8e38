import Foundation

/// The built-in profiles (shipped as JSON resources) and profile files, by name or path.
///
/// Presets: BaseAlign's targets (`basealign-ideal`, the default target, and `basealign-safety`),
/// the country vectors in the BaseAlign code (`united-kingdom`, `netherlands`, `france`) and
/// reference profiles of published models from the Value Compass Leaderboard
/// (`valuecompass-...`). Each file names its source.
public enum ProfileStore {
    /// The name of the default alignment target.
    public static let defaultTargetName = "basealign-ideal"

    static let builtIn: Result<[String: ValueProfile], ValueSpaceError> = {
        guard let root = Bundle.module.url(forResource: "Profiles", withExtension: nil) else {
            return .failure(.invalidProfile(path: "Profiles", message: "the preset folder is missing from the ValueSpace resources"))
        }
        var result: [String: ValueProfile] = [:]
        let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "json" } ?? []
        for file in files {
            do throws(ValueSpaceError) {
                let profile = try ValueProfile.load(contentsOf: file.path)
                let stem = file.deletingPathExtension().lastPathComponent
                guard profile.name == stem else {
                    return .failure(.invalidProfile(path: file.path, message: "field 'name': '\(profile.name)' differs from the file name '\(stem)'"))
                }
                result[profile.name] = profile
            } catch {
                return .failure(error)
            }
        }
        return .success(result)
    }()

    /// Every preset, by name.
    public static func presets() throws(ValueSpaceError) -> [String: ValueProfile] { try builtIn.get() }

    /// The preset names, targets first, then the rest, each group sorted.
    public static func presetNames() throws(ValueSpaceError) -> [String] {
        try presets().values.sorted { a, b in
            a.kind != b.kind ? order(a.kind) < order(b.kind) : a.name < b.name
        }.map(\.name)
    }

    static func order(_ kind: ValueProfile.Kind) -> Int {
        switch kind { case .target: 0; case .measured: 1; case .reference: 2 }
    }

    /// The preset called `name`; an unknown name throws `.unknownProfile` listing the presets.
    public static func preset(_ name: String) throws(ValueSpaceError) -> ValueProfile {
        let all = try presets()
        guard let profile = all[name] ?? all[name.lowercased()] else {
            throw .unknownProfile(name, available: try presetNames())
        }
        return profile
    }

    /// BaseAlign's default target (`basealign-ideal`).
    public static func defaultTarget() throws(ValueSpaceError) -> ValueProfile { try preset(defaultTargetName) }

    /// A preset name or a profile file: an argument that names an existing file, contains a
    /// "/" or ends in ".json" is read as a file; anything else as a preset name.
    public static func resolve(_ nameOrPath: String) throws(ValueSpaceError) -> ValueProfile {
        let looksLikePath = nameOrPath.contains("/") || nameOrPath.hasSuffix(".json")
        if looksLikePath || FileManager.default.fileExists(atPath: nameOrPath) {
            return try ValueProfile.load(contentsOf: nameOrPath)
        }
        return try preset(nameOrPath)
    }
}

/// Reads the Value Compass Leaderboard's Schwartz scores (`{"models": {name: {value: 0-100}}}`)
/// as reference profiles.
///
/// A score s in 0...100 measures how strongly a model's behaviour prioritises a value; it has no
/// "opposed" end, so it maps to s / 100 (0 = no connection, 1 = fully supported), rounded to four
/// decimals. Mapping 0...100 linearly onto [-1, 1] was rejected: it would read a weak priority
/// (say 30) as opposition. A row with any score outside 0...100, or a value missing, is skipped
/// and reported.
public enum ValueCompassLeaderboard {
    /// The preset name of a leaderboard model: "valuecompass-" and the lowercased name with runs
    /// of other characters as "-" ("GPT-4o" -> "valuecompass-gpt-4o").
    public static func profileName(model: String) -> String {
        var slug = "", dash = false
        for ch in model.lowercased() {
            if ch.isASCII && (ch.isLetter || ch.isNumber) {
                if dash && !slug.isEmpty { slug.append("-") }
                slug.append(ch)
                dash = false
            } else {
                dash = true
            }
        }
        return "valuecompass-\(slug)"
    }

    /// The converted profiles (sorted by name) and the skipped models with the reason.
    public static func profiles(from path: String) throws(ValueSpaceError) -> (profiles: [ValueProfile], skipped: [String: String]) {
        struct File: Decodable { var models: [String: [String: Double]] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidProfile(path: path, message: "cannot read the file")
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw .invalidProfile(path: path, message: "expected {\"models\": {name: {value: score}}}")
        }
        var profiles: [ValueProfile] = [], skipped: [String: String] = [:]
        for (model, scores) in file.models {
            var named: [SchwartzValue: Double] = [:]
            var problem: String?
            for (key, s) in scores {
                guard let value = SchwartzValue(name: key) else { problem = "unknown value '\(key)'"; break }
                guard (0...100).contains(s) else { problem = "\(key) = \(s) is outside 0-100 (another scale)"; break }
                named[value] = (s / 100 * 10_000).rounded() / 10_000
            }
            if problem == nil, named.count != SchwartzValue.allCases.count { problem = "only \(named.count) of the ten values" }
            if let problem {
                skipped[model] = problem
                continue
            }
            profiles.append(ValueProfile(
                name: profileName(model: model), kind: .reference, vector: try ValueVector(named),
                source: "Value Compass Leaderboard, Schwartz system, model \(model)",
                notes: "score s (0-100) converted as s/100"))
        }
        return (profiles.sorted { $0.name < $1.name }, skipped)
    }
}
