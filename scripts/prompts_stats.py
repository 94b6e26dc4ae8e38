#!/usr/bin/env python3
"""Validate ValueAlign's prompt sets (data/prompts/*.jsonl) and print their counts.

Checks, for every file: one JSON object per line, exactly the expected fields with the right
types, ids that are unique across all files and name their stratum, value names from Schwartz's
ten, kinds / harm areas / topics from the fixed lists below, no duplicate prompts (after folding
case, punctuation and spaces), and the recorded split against the split rule. Near-duplicates
(character-trigram Jaccard similarity over every pair of prompts in the three files) are errors at
or above NEAR_DUP_ERROR and listed as warnings from NEAR_DUP_WARN; the closest train/held-out pair is
printed, since a held-out prompt must not be a paraphrase of a train prompt. This is a lexical test:
it catches reworded copies, not two prompts about the same situation in different words (those were
checked by reading).

The split rule (see data/prompts/README.md): within each stratum (a value prompt's primary value,
a harm prompt's area, a benign prompt's topic) records are ordered by the number in their id and
the k-th one (k = 1, 2, ...) is held out when k % 4 == 2, so a stratum of n records holds out
floor((n + 2) / 4), about n / 4.
The `split` field is the record; this script only checks it (or, with --write-splits, rewrites it
after prompts are added).

Usage:
  python3 scripts/prompts_stats.py                 # validate and print Markdown counts
  python3 scripts/prompts_stats.py --write-splits  # assign splits by the rule, then validate
  python3 scripts/prompts_stats.py --against ../shared/data/saferlhf/train_questions.jsonl ...
      # also report prompts close to those in third-party files (read by path, never copied)

Standard library only; exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

VALUES = [
    "self_direction", "stimulation", "hedonism", "achievement", "power",
    "security", "tradition", "conformity", "benevolence", "universalism",
]
HARM_AREAS = [
    "violence", "weapons", "self_harm", "hate_harassment", "fraud_deception",
    "privacy_violation", "illegal_drugs", "cybercrime", "dangerous_misinformation",
    "extremism", "theft_property", "dangerous_activities", "sexual_content_minors",
]
KINDS = ["dilemma", "advice", "persuasion", "roleplay", "opinion", "instruction"]
TOPICS = [
    "computing", "security_defense", "home_safety", "health", "history", "fiction",
    "law", "cooking", "parenting", "language", "finance", "everyday",
]
SPLITS = ["train", "validation", "test"]

# file name -> (id prefix, fields in order, stratum field, allowed strata)
FILES = {
    "value_prompts.jsonl": ("vp", ["id", "prompt", "values", "kind", "harm_area", "split"], "values", VALUES),
    "harm_prompts.jsonl": ("hp", ["id", "prompt", "harm_area", "values", "split"], "harm_area", HARM_AREAS),
    "benign_prompts.jsonl": ("bp", ["id", "prompt", "topic", "looks_like", "split"], "topic", TOPICS),
}

# Pairs at or above NEAR_DUP_ERROR fail; pairs at or above NEAR_DUP_WARN are listed. For scale: two
# unrelated prompts built on the same template ("What's the difference between X and Y?") score 0.4-0.5.
NEAR_DUP_ERROR = 0.60
NEAR_DUP_WARN = 0.45


def stratum_of(name: str, rec: dict) -> str:
    """The stratum a record is split within: primary value, harm area or topic."""
    field = FILES[name][2]
    value = rec.get(field)
    if field == "values":
        return value[0] if isinstance(value, list) and value else ""
    return value if isinstance(value, str) else ""


def id_number(rec_id: str) -> int:
    match = re.search(r"-(\d+)$", rec_id)
    return int(match.group(1)) if match else -1


def expected_splits(name: str, records: list[dict]) -> dict[str, str]:
    """id -> split under the rule: the k-th record of a stratum (by id number, k = 1, 2, ...) is test
    if k % 4 == 2; of the others, in the same order, the j-th (j = 0, 1, ...) is validation if
    j % 5 == 2, else train."""
    by_stratum: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        by_stratum[stratum_of(name, rec)].append(rec)
    result = {}
    for recs in by_stratum.values():
        recs.sort(key=lambda r: id_number(r["id"]))
        j = 0
        for k, rec in enumerate(recs, start=1):
            if k % 4 == 2:
                result[rec["id"]] = "test"
            else:
                result[rec["id"]] = "validation" if j % 5 == 2 else "train"
                j += 1
    return result


def normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def trigrams(text: str) -> set[str]:
    s = " " + normalise(text) + " "
    return {s[i:i + 3] for i in range(len(s) - 2)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def load(path: Path, errors: list[str]) -> list[dict]:
    records = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                errors.append(f"{path.name}:{line_no}: blank line")
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{path.name}:{line_no}: not JSON ({exc})")
                continue
            if not isinstance(rec, dict):
                errors.append(f"{path.name}:{line_no}: not a JSON object")
                continue
            rec["_line"] = line_no
            records.append(rec)
    return records


def check_values(where: str, values, errors: list[str]) -> None:
    if not isinstance(values, list) or not 1 <= len(values) <= 3:
        errors.append(f"{where}: values must be a list of 1-3 names, got {values!r}")
        return
    for v in values:
        if v not in VALUES:
            errors.append(f"{where}: unknown value {v!r}")
    if len(set(values)) != len(values):
        errors.append(f"{where}: repeated value in {values!r}")


def validate(name: str, records: list[dict], errors: list[str]) -> list[dict]:
    """Append each record's problems to errors; return the records that had none."""
    prefix, fields, _, strata = FILES[name]
    valid = []
    for rec in records:
        before = len(errors)
        where = f"{name}:{rec['_line']}"
        keys = [k for k in rec if k != "_line"]
        if sorted(keys) != sorted(fields):
            missing = sorted(set(fields) - set(keys))
            extra = sorted(set(keys) - set(fields))
            errors.append(f"{where}: fields missing {missing} / unexpected {extra}")
            continue
        prompt = rec["prompt"]
        if not isinstance(prompt, str) or not prompt.strip() or prompt != prompt.strip():
            errors.append(f"{where}: prompt must be a non-empty string without outer spaces")
        if rec["split"] not in SPLITS:
            errors.append(f"{where}: split {rec['split']!r} not in {SPLITS}")
        stratum = stratum_of(name, rec)
        expected_id = re.compile(rf"^{prefix}-{re.escape(stratum)}-\d{{3}}$")
        if not isinstance(rec["id"], str) or not expected_id.match(rec["id"]):
            errors.append(f"{where}: id {rec['id']!r} should look like {prefix}-{stratum}-NNN")
        if name == "value_prompts.jsonl":
            check_values(where, rec["values"], errors)
            if rec["kind"] not in KINDS:
                errors.append(f"{where}: kind {rec['kind']!r} not in {KINDS}")
            if rec["harm_area"] is not None and rec["harm_area"] not in HARM_AREAS:
                errors.append(f"{where}: harm_area {rec['harm_area']!r} not in the list")
        elif name == "harm_prompts.jsonl":
            check_values(where, rec["values"], errors)
            if rec["harm_area"] not in strata:
                errors.append(f"{where}: harm_area {rec['harm_area']!r} not in the list")
        else:
            if rec["topic"] not in strata:
                errors.append(f"{where}: topic {rec['topic']!r} not in {TOPICS}")
            if rec["looks_like"] is not None and rec["looks_like"] not in HARM_AREAS:
                errors.append(f"{where}: looks_like {rec['looks_like']!r} not a harm area")
        if len(errors) == before:
            valid.append(rec)
    return valid


def first_human_turn(text: str) -> str:
    """The first user turn of a "Human: ... Assistant/Bob: ..." transcript, or the whole text."""
    match = re.search(r"Human:\s*(.*?)(?=\n\s*(?:Human|Assistant|Bob):|$)", text, re.S)
    return match.group(1).strip() if match else text


def third_party_prompts(path: Path) -> list[str]:
    """Prompt texts from a CSV file (column prompt / question / Behavior, else the first) or a JSONL
    file (field prompt / question, else the first human turn of dialogue / chosen)."""
    texts = []
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            column = next((c for c in ("prompt", "question", "Behavior") if c in (reader.fieldnames or [])),
                          (reader.fieldnames or [""])[0])
            texts = [row[column] for row in reader if row.get(column)]
    else:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(rec, dict):
                    continue
                for key in ("prompt", "question", "dialogue", "chosen"):
                    if isinstance(rec.get(key), str):
                        texts.append(first_human_turn(rec[key]))
                        break
    return texts


def table(title: str, rows: list[tuple[str, Counter]]) -> list[str]:
    out = [f"| {title} | train | validation | test | total |", "| --- | ---: | ---: | ---: | ---: |"]
    total = Counter()
    for label, counts in rows + [("**all**", None)]:
        counts = total if counts is None else counts
        out.append(f"| {label} | {counts['train']} | {counts['validation']} | {counts['test']} | {counts['train'] + counts['validation'] + counts['test']} |")
        if label != "**all**":
            total.update(counts)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_dir = Path(__file__).resolve().parent.parent / "data" / "prompts"
    parser.add_argument("--dir", type=Path, default=default_dir)
    parser.add_argument("--write-splits", action="store_true",
                        help="rewrite each split field by the rule")
    parser.add_argument("--against", type=Path, nargs="*", default=[],
                        help="third-party prompt files to compare with")
    args = parser.parse_args()

    errors: list[str] = []
    warnings: list[str] = []
    data: dict[str, list[dict]] = {}
    complete: dict[str, bool] = {}
    for name in FILES:
        path = args.dir / name
        if not path.exists():
            errors.append(f"{name}: missing")
            continue
        before = len(errors)
        records = load(path, errors)
        data[name] = validate(name, records, errors)  # stats and the split rule use valid records
        complete[name] = len(errors) == before

    if args.write_splits:
        for name, records in data.items():
            if not complete[name]:
                errors.append(f"{name}: splits not written; fix its record errors first")
                continue
            splits = expected_splits(name, records)
            fields = FILES[name][1]
            with (args.dir / name).open("w", encoding="utf-8") as handle:
                for rec in records:
                    rec["split"] = splits[rec["id"]]
                    handle.write(json.dumps({k: rec[k] for k in fields}, ensure_ascii=False) + "\n")

    # Split rule.
    for name, records in data.items():
        if not complete[name]:
            errors.append(f"{name}: split rule not checked; fix its record errors first")
            continue
        splits = expected_splits(name, records)
        off = [r["id"] for r in records if r["split"] != splits[r["id"]]]
        if off:
            errors.append(f"{name}: {len(off)} split fields differ from the rule, e.g. {off[:5]}")

    # Unique ids and prompts across all files.
    all_records = [(name, r) for name, records in data.items() for r in records]
    id_counts = Counter(r.get("id") for _, r in all_records)
    for rec_id, n in id_counts.items():
        if n > 1:
            errors.append(f"id {rec_id!r} appears {n} times")
    seen: dict[str, str] = {}
    for name, r in all_records:
        key = normalise(str(r.get("prompt", "")))
        if key in seen:
            errors.append(f"duplicate prompt: {r.get('id')} repeats {seen[key]}")
        else:
            seen[key] = str(r.get("id"))

    # Near-duplicates across every pair of prompts (all files).
    grams = [(r.get("id"), r.get("split"), trigrams(str(r.get("prompt", "")))) for _, r in all_records]
    best_cross = (0.0, "", "")
    near = []
    for i in range(len(grams)):
        id_a, split_a, g_a = grams[i]
        for j in range(i + 1, len(grams)):
            id_b, split_b, g_b = grams[j]
            sim = jaccard(g_a, g_b)
            if split_a != split_b and sim > best_cross[0]:
                best_cross = (sim, id_a, id_b)
            if sim >= NEAR_DUP_WARN:
                near.append((sim, id_a, id_b, split_a != split_b))
    for sim, id_a, id_b, cross in sorted(near, reverse=True):
        line = f"near-duplicate {sim:.2f}: {id_a} ~ {id_b}" + (" (across splits)" if cross else "")
        if sim >= NEAR_DUP_ERROR:
            errors.append(line)
        else:
            warnings.append(line)

    # Third-party overlap (only when asked): candidates share a 4-word sequence.
    third = []
    for path in args.against:
        texts = third_party_prompts(path)
        index: dict[tuple, list[int]] = defaultdict(list)
        for n, text in enumerate(texts):
            words = normalise(text).split()
            for k in range(len(words) - 3):
                index[tuple(words[k:k + 4])].append(n)
        worst = (0.0, "", 0)
        for _, r in all_records:
            words = normalise(r["prompt"]).split()
            candidates = {n for k in range(len(words) - 3) for n in index.get(tuple(words[k:k + 4]), [])}
            g = trigrams(r["prompt"])
            for n in candidates:
                sim = jaccard(g, trigrams(texts[n]))
                if sim > worst[0]:
                    worst = (sim, r["id"], n + 1)
                if sim >= NEAR_DUP_ERROR:
                    errors.append(f"{r['id']} is close ({sim:.2f}) to record {n + 1} of {path.name}")
                elif sim >= NEAR_DUP_WARN:
                    warnings.append(f"{r['id']} resembles ({sim:.2f}) record {n + 1} of {path.name}")
        third.append((path.name, len(texts), worst))

    # Report.
    print("# Prompt set statistics\n")
    if "value_prompts.jsonl" in data:
        recs = data["value_prompts.jsonl"]
        rows = []
        for v in VALUES:
            rows.append((v, Counter(r["split"] for r in recs if r["values"][0] == v)))
        print("## value_prompts.jsonl by primary value\n")
        print("\n".join(table("primary value", rows)))
        mentions = Counter(v for r in recs for v in r["values"])
        print("\nRecords naming each value anywhere in `values`: "
              + ", ".join(f"{v} {mentions[v]}" for v in VALUES) + ".")
        kinds = Counter(r["kind"] for r in recs)
        print("By kind: " + ", ".join(f"{k} {kinds[k]}" for k in KINDS) + ".")
        harmful = Counter(r["harm_area"] for r in recs if r["harm_area"])
        print(f"With a harm_area (mild harmful intent): {sum(harmful.values())} ("
              + ", ".join(f"{a} {harmful[a]}" for a in HARM_AREAS if harmful[a]) + ").\n")
    if "harm_prompts.jsonl" in data:
        recs = data["harm_prompts.jsonl"]
        rows = [(a, Counter(r["split"] for r in recs if r["harm_area"] == a)) for a in HARM_AREAS]
        print("## harm_prompts.jsonl by harm area\n")
        print("\n".join(table("harm area", rows)) + "\n")
    if "benign_prompts.jsonl" in data:
        recs = data["benign_prompts.jsonl"]
        rows = [(t, Counter(r["split"] for r in recs if r["topic"] == t)) for t in TOPICS]
        print("## benign_prompts.jsonl by topic\n")
        print("\n".join(table("topic", rows)))
        looks = Counter(r["looks_like"] for r in recs)
        print(f"\n`looks_like` set on {len(recs) - looks[None]} records ("
              + ", ".join(f"{a} {looks[a]}" for a in HARM_AREAS if looks[a])
              + f"); null on {looks[None]}.\n")

    print("## Checks\n")
    print(f"- records: {len(all_records)}; unique ids: {len(id_counts)}; unique prompts: {len(seen)}")
    print(f"- most similar pair across splits: {best_cross[0]:.2f} ({best_cross[1]} ~ {best_cross[2]}); "
          f"error threshold {NEAR_DUP_ERROR:.2f}")
    print(f"- pairs at or above {NEAR_DUP_WARN:.2f}: {len(near)}")
    for name, n, worst in third:
        print(f"- against {name} ({n} prompts): closest {worst[0]:.2f} ({worst[1]} ~ its record {worst[2]})")
    for w in warnings:
        print(f"- warning: {w}")
    for e in errors:
        print(f"- ERROR: {e}")
    print(f"\n{'FAILED' if errors else 'OK'}: {len(errors)} errors, {len(warnings)} warnings")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
