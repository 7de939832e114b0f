#!/usr/bin/env bash
# The GPU checks in one command, on a GPU machine without internet access:
#
#   perf/gpu_check.sh [WHEELS_DIR] [OUT_JSON]      # defaults: gpu-wheels, gpu-checks.json
#
# Needs a CUDA torch (>= 2.5) already installed for `python3`. The other packages come from
# WHEELS_DIR (made by perf/gpu_wheels.sh) into a virtual environment that sees the system's
# torch; nothing is downloaded. Runs perf/gpu_checks.py (under 10 minutes on an A10G or
# better) and prints the docs table from its JSON.
set -euo pipefail
wheels=${1:-gpu-wheels}
out=${2:-gpu-checks.json}
root=$(cd "$(dirname "$0")/.." && pwd)
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA torch here")'
venv=${GPU_CHECK_VENV:-/tmp/pria-gpu-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv --system-site-packages "$venv"
fi
if ! "$venv/bin/python" -c 'import transformers, peft, bitsandbytes, accelerate, pydantic_settings' 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet --no-index --no-deps --find-links "$wheels" \
    -r "$root/perf/gpu_requirements.txt"
fi
cd "$root"
PYTHONPATH="$root" "$venv/bin/python" perf/gpu_checks.py --json "$out"
PYTHONPATH="$root" "$venv/bin/python" perf/gpu_checks.py --render "$out"
