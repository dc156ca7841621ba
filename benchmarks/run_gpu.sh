#!/usr/bin/env bash
# Everything a GPU session runs, in one call (the device tool): build for the GPU's arch, the
# test suite on the GPU, compute-sanitizer, a wheel check, and the benchmarks. Results go to
# $OUT (the device tool's folder) or benchmarks/results/, named <gpu>-<date>.*; commit them.
#
#   bash benchmarks/run_gpu.sh            # everything (about 10 minutes on an H100)
#   STEPS="build test" bash benchmarks/run_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results}
STEPS=${STEPS:-"build test sanitizer wheel bench"}
mkdir -p "$OUT"
ARCH=$($PY -c 'import torch; m, n = torch.cuda.get_device_capability(); print(f"{m}.{n}")')
GPU=$($PY -c 'import torch; print(torch.cuda.get_device_name().replace(" ", "-"))')
STAMP="$GPU-$(date -u +%Y-%m-%d)"
status=0
step() { echo; echo "=== $1 ($(date -u +%H:%M:%S))"; }
want() { [[ " $STEPS " == *" $1 "* ]]; }

if want build; then
  step "build for sm_${ARCH/./}"
  FUSEDATTN_CUDA_ARCHS=$ARCH MAX_JOBS=16 \
    $PY -m pip install --no-build-isolation --no-deps -e . 2>&1 | tail -3 || status=1
  $PY -m fusedattn env | tee "$OUT/$STAMP-env.txt"
fi
if want test; then
  step "test suite on the GPU"
  FUSEDATTN_EXPECT_CUDA_BUILD=1 $PY -m pytest tests -q -x -p no:cacheprovider \
    --junitxml="$OUT/$STAMP-tests.xml" 2>&1 | tail -25 || status=1
fi
if want sanitizer; then
  step "compute-sanitizer"
  bash tests/gpu/run_sanitizer.sh 2>&1 | tail -20 | tee "$OUT/$STAMP-sanitizer.txt" || status=1
fi
if want wheel; then
  step "wheel for sm_${ARCH/./} in a fresh venv"
  rm -rf /tmp/fa-wheel /tmp/fa-venv
  FUSEDATTN_CUDA_ARCHS=$ARCH MAX_JOBS=16 $PY -m pip wheel --no-build-isolation --no-deps \
    -w /tmp/fa-wheel . 2>&1 | tail -2 || status=1
  $PY -m venv --system-site-packages /tmp/fa-venv
  /tmp/fa-venv/bin/pip install -q --no-deps /tmp/fa-wheel/fusedattn-*.whl || status=1
  (cd /tmp && FUSEDATTN_EXPECT_CUDA_BUILD=1 /tmp/fa-venv/bin/python -m pytest -q -p no:cacheprovider \
    "$OLDPWD/tests/test_cuda.py" "$OLDPWD/tests/test_build.py" 2>&1 | tail -3) || status=1
fi
if want bench; then
  step "benchmark report (the spec shapes, bfloat16)"
  $PY -m fusedattn bench --shapes spec --dtype bfloat16 --modes forward,forward+backward \
    --json "$OUT/$STAMP-bf16.json" --plot "$OUT/$STAMP-bf16.png" 2>&1 | grep -v "it/s" || status=1
  step "pytest-benchmark suite"
  $PY -m pytest benchmarks --benchmark-only -q -p no:cacheprovider --fa-dtype bfloat16 \
    --benchmark-json="$OUT/$STAMP-pytest-benchmark.json" 2>&1 | tail -5 || status=1
fi
exit $status
