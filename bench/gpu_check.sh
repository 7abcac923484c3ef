#!/usr/bin/env bash
# GPU check (<= 12 min on one H100/H200):
#  1. NPO on a ~1B Llama from config in bf16, full / LoRA / QLoRA (bench/gpu_check.py, <= 8 min);
#  2. 2 NPO steps under FSDP2 and DeepSpeed ZeRO-3 on every visible GPU, each printing the engine
#     that ran and whether its per-step losses match one process (bench/gpu_sharded.py, <= 4 min;
#     ZeRO-3 needs `pip install deepspeed`). The same check runs on the CPU: bench/gpu_sharded.py --cpu.
# Usage: bash bench/gpu_check.sh   (from the repo root, with .venv installed or torch+genforget on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no CUDA GPU visible" >&2; exit 2; }
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1
status=0
timeout 480 "$PY" bench/gpu_check.py "$@" || status=$?
timeout 240 "$PY" bench/gpu_sharded.py || status=$?
exit $status
