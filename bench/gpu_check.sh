#!/usr/bin/env bash
# GPU check (<= 8 min on one H100/H200): NPO on a ~1B Llama from config in bf16, full / LoRA / QLoRA.
# Usage: bash bench/gpu_check.sh   (from the repo root, with .venv installed or torch+genforget on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no CUDA GPU visible" >&2; exit 2; }
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1
timeout 480 "$PY" bench/gpu_check.py "$@"
