#!/usr/bin/env bash
# The package as a user installs it: build the wheel, install it (not editable) into a fresh venv
# with the CPU torch pinned first, and use it from a temporary directory holding no repository
# file, so anything the wheel forgot (a suite, packaged data, a module) fails here.
#   bash .ci/wheel_check.sh [python used to build the wheel]
set -euo pipefail
py=${1:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m pip wheel -q --no-deps -w "$work/dist" "$root"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip
"$work/venv/bin/pip" install -q torch==2.13.0
"$work/venv/bin/pip" install -q "$work"/dist/genforget-*.whl
cp "$root/.ci/wheel_smoke.py" "$work/"
cd "$work"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
"$work/venv/bin/genforget" --help >/dev/null
"$work/venv/bin/genforget" demo copyright --help >/dev/null
"$work/venv/bin/python" wheel_smoke.py "$root"
echo "wheel check passed: $(ls "$work"/dist)"
