#!/usr/bin/env bash
# Train all three stages on the labelled rat sessions (tests/data/rat_behavior) and report per-behaviour F1 on
# held-out sessions. From a clean clone:
#
#     python -m venv .venv && .venv/bin/pip install -e '.[train,dev]'
#     scripts/train_rat.sh [PROJECT_DIR] [KEY=VALUE ...]
#
# PROJECT_DIR defaults to runs/rat_demo (created; reused and resumed if it exists). Extra KEY=VALUE arguments are
# training-config overrides (e.g. sequence.arch=tcn). Environment: DEG_TRAIN (the deg-train command, default
# .venv/bin/deg-train or deg-train on PATH), PRESET (default live_cpu_hour: the live CPU models, a few minutes on a 2-core CPU; cpu_hour trains
# DeepEthogram's deg_f models in under an hour; see docs/accuracy.md).
#
# The split keeps recording sessions together: cage1_<time> and cage2_<time> were filmed at the same time and share
# a session; each unsessioned_* video is its own.
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT="${1:-runs/rat_demo}"
shift || true
PRESET="${PRESET:-live_cpu_hour}"
if [[ -z "${DEG_TRAIN:-}" ]]; then
    if [[ -x .venv/bin/deg-train ]]; then DEG_TRAIN=.venv/bin/deg-train; else DEG_TRAIN=deg-train; fi
fi
DATA=tests/data/rat_behavior

if [[ ! -f "$PROJECT/project_config.yaml" ]]; then
    "$DEG_TRAIN" init "$PROJECT" --name rat_demo
    videos=()
    labels=()
    for dir in "$DATA"/*/; do
        name="$(basename "$dir")"
        videos+=("$dir/$name.mp4")
        labels+=("$dir/${name}_labels.csv")
    done
    "$DEG_TRAIN" add --project "$PROJECT" "${videos[@]}" --labels "${labels[@]}"
    "$DEG_TRAIN" split --project "$PROJECT" --make --fractions 0.6 0.2 0.2 --seed 0 \
        --group-by '^cage[0-9]+_([0-9_]+)$'
fi
"$DEG_TRAIN" status --project "$PROJECT"

start=$(date +%s)
"$DEG_TRAIN" train-all --project "$PROJECT" --preset "$PRESET" "$@"
echo "train-all took $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s"
