#!/usr/bin/env bash
# Run the checks.
#   bash scripts/test.sh               everything: lint, the front end's unit tests, then every Python test (what CI and
#                                      the README run); every test's times in artifacts/durations.txt, the 25 slowest
#                                      printed
#   bash scripts/test.sh unit          one tier of the Python tests (tests/tiers.py): unit, engine or e2e
# Further arguments go to pytest: bash scripts/test.sh unit -k codec -x
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
case "${1:-}" in
  unit | engine | e2e)
    tier=$1
    shift
    workers=(-n 2 --dist loadgroup)  # two workers on two cores, one torch thread each
    [ "$tier" = e2e ] && workers=()  # one worker's JupyterLab and Chromium anyway (several processes of their own)
    # shellcheck disable=SC2046  # the tier's files, one word each
    exec $PY -m pytest -q -m "$tier" "${workers[@]}" --durations=25 $($PY tests/tiers.py "$tier") "$@"
    ;;
esac
$PY -m ruff check .
$PY -m ruff format --check .
(cd js && npx --no-install tsc --noEmit && npx --no-install vitest run)
# every e2e test on one worker (its xdist_group), the other tests spread over both
$PY -m pytest -q -n 2 --dist loadgroup --durations=25 --durations-file=artifacts/durations.txt "$@"
