#!/usr/bin/env bash
# Make .venv-ct: circuit-tracer 0.5 in its own venv (it pins transformers <= 4.57.3 and nnsight < 0.8, which clash
# with repwidget's), for tests/test_circuit_tracer_compat.py and bench/bench_circuit_tracer.py. Idempotent.
#   bash scripts/setup_circuit_tracer.sh            # makes ./.venv-ct
#   VENV_CT=/path/.venv-ct bash scripts/setup_circuit_tracer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
VENV_CT="${VENV_CT:-.venv-ct}"
py="$VENV_CT/bin/python"
if [[ -x "$py" ]] && "$py" -c "import circuit_tracer, torch, nnsight; assert nnsight.__version__ < '0.8'; assert torch.__version__.startswith('$TORCH_VERSION')" 2>/dev/null; then
  echo "setup_circuit_tracer: $VENV_CT already has circuit-tracer"; exit 0
fi
[[ -x "$py" ]] || python3 -m venv "$VENV_CT"
"$py" -m pip install -q --upgrade pip
# torch first, pinned (a CPU wheel; circuit-tracer's unpinned torch would otherwise pull several GB of CUDA packages)
"$py" -m pip install -q "torch==${TORCH_VERSION}"
"$py" -m pip install -q "circuit-tracer==0.5.*" "nnsight<0.8" "torch==${TORCH_VERSION}"
"$py" -c "import torch; assert torch.__version__.startswith('$TORCH_VERSION'), torch.__version__"
echo "setup_circuit_tracer: done; circuit-tracer $("$py" -c 'from importlib.metadata import version; print(version("circuit-tracer"))') in $VENV_CT"
