#!/usr/bin/env bash
# The GPU checks still open for issues 4 and 5, as one script for a lent device (~8 min on an H200).
# Usage, from the repository root on the GPU machine (its PyTorch, Triton and CUDA are used as they are):
#   bash benchmarks/device_check.sh [WHEEL_DIR] [OUT_DIR]
# WHEEL_DIR (optional): wheels of this project's pure-Python needs the machine lacks (transformers, peft,
# pydantic, ...), installed with --no-deps into /tmp/site. OUT_DIR (default: ./device_logs) gets the logs.
# The H200 image (Python 3.12, torch 2.11) lacked these; fetch them where pip works, e.g.:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     transformers==5.24.0 peft==0.21.2 tokenizers==0.23.3 pydantic==2.14.4 pydantic_core==2.50.5 \
#     annotated_types==0.8.0 typing_inspection==0.4.5
set -uo pipefail
cd "$(dirname "$0")/.."
wheels=${1:-}
out=${2:-device_logs}
mkdir -p "$out"
if [[ -n "$wheels" ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/device.txt"
# GPU tests (varlen attention kernel, CUDA-graph decoding)
timeout 90 python3 -m pytest -q -p no:cacheprovider -o addopts="" -m gpu \
  tests/train/test_varlen_attention.py tests/model/test_static_decode.py 2>&1 | tail -5 | tee "$out/tests_gpu.log"
# issue 4: our fastest trainer setting against the plain loop, 2 interleaved rounds (the plain loop's
# speed varied 6.6k-9.6k real tokens/s between runs on one H200; a round takes ~135 s)
timeout 300 python3 benchmarks/train_throughput.py --preset lamm7b --samples 128 \
  --ours 8192:lamm_varlen:compile --repeats 2 2>&1 | grep -v -i warn | tee "$out/train.log"
# issue 5: where the batch-16 decode step's time goes (kernels inside the replayed CUDA graph)
timeout 150 python3 benchmarks/generate_speed.py --preset lamm7b --device cuda --variants 16:static-compiled \
  --requests 16 --max-new-tokens 128 --bucket 1024 --baseline-requests 1 --merge-lora only --profile \
  --profile-rows 25 2>&1 | grep -v -i warn | tee "$out/generate_profile.log"
