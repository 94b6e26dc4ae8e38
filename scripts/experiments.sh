#!/usr/bin/env bash
# The experiments of docs/experiments.md, one command each, in order; then the comparison table.
# Run from the repository root after `make build-release`. Every run is step-bounded (--steps) so
# that its result does not depend on the machine's speed; seeds are the defaults (42) unless named.
# A rerun continues unfinished runs and skips finished ones (their folders show their reports).
set -euo pipefail
cd "$(dirname "$0")/.."
V=.build/release/valuealign
DATA=${VALUEALIGN_DATA:-../shared/data}
STEPS=${STEPS:-12}   # one bon-sft round: ~30 answers, 4 steps x 3 epochs
COMMON=(--steps "$STEPS")

# 1. BaseAlign (the main job's settings, step-bounded).
$V align "${COMMON[@]}" --out runs/exp-basealign
# 2. RLHF baseline: a reward model from human preference pairs (HH harmless), then the same
#    alignment with its reward, at the same prompts, samples and steps.
$V rm train --pairs "$DATA/preferences/harmless.jsonl" --steps 30 --batch-size 8 --max-length 256 \
    --learning-rate 2e-4 --warmup-steps 3 --checkpoint-every 10 --out runs/rm-harmless
$V align "${COMMON[@]}" --reward rm:runs/rm-harmless/final --out runs/exp-rlhf
# 3. BaseAlign with one fifth of the training prompts (119 of 595, a seeded subset).
$V align "${COMMON[@]}" --train-limit 119 --out runs/exp-fifth
# 4. Country targets.
$V align "${COMMON[@]}" --target united-kingdom --out runs/exp-uk
$V align "${COMMON[@]}" --target france --out runs/exp-france

$V compare runs/exp-basealign runs/exp-rlhf runs/exp-fifth runs/exp-uk runs/exp-france --out runs/experiments.md
