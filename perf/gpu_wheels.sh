#!/usr/bin/env bash
# Download, on a machine with internet access, every wheel perf/gpu_checks.py needs on an
# offline GPU machine (besides its CUDA torch): perf/gpu_requirements.txt, for the GPU
# machine's Python and platform. Then copy DIR there and run perf/gpu_check.sh DIR.
#
#   perf/gpu_wheels.sh [DIR] [PYTHON_VERSION]      # defaults: gpu-wheels, 3.11
set -euo pipefail
dir=${1:-gpu-wheels}
python_version=${2:-3.11}
here=$(cd "$(dirname "$0")" && pwd)
pip=${PIP:-pip}
mkdir -p "$dir"
"$pip" download --dest "$dir" --no-deps --only-binary=:all: \
  --python-version "$python_version" --implementation cp \
  --platform manylinux_2_34_x86_64 --platform manylinux_2_31_x86_64 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform linux_x86_64 --platform any \
  -r "$here/gpu_requirements.txt"
echo "wheels for Python $python_version in $dir: $(ls "$dir" | wc -l) files, $(du -sh "$dir" | cut -f1)"
