#!/usr/bin/env bash
# Every GPU check in one pass, sized for a machine lent for a few minutes: correctness first, then speed.
#
#     OUT=/tmp/gpu_check bash benchmarks/gpu_check.sh        # logs: $OUT/<n>_<check>.log, one per check
#
# Each check has its own time limit, so one that hangs or fails leaves the others' figures intact.
#   1. machine: GPU, driver, library versions
#   2. tests:   NEMOTRON_GPU_TESTS=1 pytest -m gpu (GPU == CPU in fp32; cuDNN attention == reference in bf16)
#   3. train:   nemotron-1b bf16 train step, seq 2048 x batch 4: tokens/s and MFU, XLA vs cuDNN attention
#   4. decode:  greedy decode tok/s vs HF generate on the same GPU: bench-cpu fp32 (token parity), nemotron-1b bf16
#   6. decode:  nemotron-1b bf16 alone at batch 64, 8, 1 (batch 1 last: was it slower than 8 only because it ran first?)
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}

check() {  # check NAME SECONDS COMMAND...: run with a limit, log to $OUT, print the log's tail
    local name=$1 limit=$2 t0=$SECONDS
    shift 2
    echo "=== $name (limit ${limit}s)"
    timeout --kill-after=5 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "rc=$rc after $((SECONDS - t0))s" >>"$OUT/$name.log"
    tail -n 25 "$OUT/$name.log"
}

check 1_machine 40 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv;
  $PY -c 'import sys, jax, flax, optax, orbax.checkpoint as o; print(sys.version.split()[0], \"jax\", jax.__version__,
  \"flax\", flax.__version__, \"optax\", optax.__version__, jax.devices())'"
check 2_tests 120 env NEMOTRON_GPU_TESTS=1 $PY -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py
check 3_train 180 $PY benchmarks/train_step.py --preset nemotron-1b --dtype bfloat16 --seq 2048 --batch 4 \
    --steps 5 --variants fused,cudnn --no-torch
check 4_decode_parity 100 $PY benchmarks/generate.py --hf-gpu --matmul-precision highest --batches 1 8 \
    --repeats 3
# HF's side needs ~2 min just to build the 1.9B model on the CPU: batches 1 and 8 against it, 64 without it
check 5_decode_1b 190 $PY benchmarks/generate.py --preset nemotron-1b --dtype bfloat16 --hf-gpu \
    --batches 1 8 --repeats 3
check 6_decode_1b_b64 60 $PY benchmarks/generate.py --preset nemotron-1b --dtype bfloat16 --no-hf \
    --batches 64 8 1 --repeats 3
