#!/usr/bin/env bash
# Run every check: lint, the front end's unit tests, then the Python tests (whose summary closes the output).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
(cd js && npx --no-install tsc --noEmit && npx --no-install vitest run)
.venv/bin/python -m pytest -q --durations=25 "$@"
