#!/usr/bin/env bash
# Set up the agent (system packages, .venv) and run it on the bundled sample WAV with the
# bundled speech12 model, printing one JSON line per detection.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh agent
model="$(.venv/bin/python -c 'from keywire.training.bundled import model_path; print(model_path("speech12"))')"
sample="$(.venv/bin/python -c 'from keywire.training.bundled import sample_path; print(sample_path())')"
echo "keywire-agent run --model $model --source file:$sample --no-realtime" >&2
exec .venv/bin/keywire-agent run --model "$model" --source "file:$sample" --no-realtime
