#!/usr/bin/env bash
# Set up everything (system packages, .venv) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
exec .venv/bin/python -m pytest -q -ra "$@"
