public import Foundation
import LanguageModels
import ValueAlignCore

extension ContaminationIndex {
    /// The project's evaluation prompts (held-out splits only: records marked `train` are left
    /// out) and the shared data's test sets, as (name, path); `missing` names what could not be
    /// found (the shared data folder may be absent), so the report can say what was not checked.
    public static func defaultSets(projectRoot: String = FileManager.default.currentDirectoryPath) -> (sets: [(String, String)], missing: [String]) {
        var sets: [(String, String)] = []
        var missing: [String] = []
        for relative in ["data/prompts/value_prompts.jsonl", "data/prompts/harm_prompts.jsonl", "data/prompts/benign_prompts.jsonl",
                         "data/eval/ordinary_pairs.jsonl", "data/eval/harmful_pairs.jsonl", "data/refusals/model_answers_validation.jsonl"] {
            let path = (projectRoot as NSString).appendingPathComponent(relative)
            if FileManager.default.fileExists(atPath: path) { sets.append((relative, path)) } else { missing.append(relative) }
        }
        for relative in ["saferlhf/test_questions.jsonl", "redteam/harmbench_behaviors_val.csv"] {
            if let path = try? SharedData.file(relative) { sets.append(("shared:" + relative, path)) } else { missing.append("shared:" + relative) }
        }
        return (sets, missing)
    }

    /// Reads the prompts of evaluation files: JSONL with `prompt` (or `messages`, whose last user
    /// turn counts), skipping records whose `split` is `train`; CSV in HarmBench's layout or with
    /// a `prompt` column. A file that cannot be read is an error naming it and the line.
    public static func load(_ sets: [(name: String, path: String)]) throws -> ContaminationIndex {
        var index = ContaminationIndex()
        for (name, path) in sets {
            if path.lowercased().hasSuffix(".csv") {
                for (line, record) in try BehaviorCSV.load(path) where record.split != "train" {
                    index.add(set: name, id: record.id ?? "line-\(line)", text: record.prompt ?? "")
                }
                continue
            }
            let reader = try LineReader(path: path)
            while let (line, text) = try reader.nextNonBlank() {
                guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                    throw DataAudit.AuditError(description: "\(path):\(line): not a JSON object (evaluation set \(name))")
                }
                if object["split"] as? String == "train" { continue }
                var prompt = object["prompt"] as? String
                if prompt == nil, let list = object["messages"] as? [Any], let m = DatasetReader.messages(list) {
                    prompt = m.last { $0.0 == "user" }?.1
                }
                guard let prompt else { throw DataAudit.AuditError(description: "\(path):\(line): no 'prompt' (evaluation set \(name))") }
                let id = (object["id"] as? String) ?? "line-\(line)"
                index.add(set: name, id: id, text: prompt)
            }
        }
        return index
    }
}
