#!/usr/bin/env bash
# One GPU session in one call (made for an H200, the GPU the device tool lends now and then):
# build for this GPU's arch, the tuner, the test suite on the GPU, compute-sanitizer, the
# benchmarks, and the static SASS report beside them (so model and measurement can be compared),
# in at most 8 minutes: every step has its own time limit. Results go to $OUT (the device tool's
# folder, fetched back) or benchmarks/results/, named <gpu>-<date>-*; commit them.
#
#   bash benchmarks/run_gpu.sh                  # everything
#   STEPS="build bench" bash benchmarks/run_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results}
STEPS=${STEPS:-"build report tune test sanitizer bench"}
mkdir -p "$OUT"
ARCH=$($PY -c 'import torch; m, n = torch.cuda.get_device_capability(); print(f"{m}.{n}")')
GPU=$($PY -c 'import torch; print(torch.cuda.get_device_name().replace(" ", "-"))')
STAMP="$GPU-$(date -u +%Y-%m-%d)"
export FUSEDATTN_CACHE_DIR="$PWD/build/tuning"   # the tuner's winners, read by the later steps
status=0
start=$(date +%s)
step() { echo; echo "=== $1 ($(( $(date +%s) - start )) s)"; }
want() { [[ " $STEPS " == *" $1 "* ]]; }
# run SECONDS NAME COMMAND...: the command under its time limit; a miss is reported, not fatal
run() {
  local limit=$1 name=$2; shift 2
  timeout --kill-after=5 "$limit" "$@"
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "!!! $name: exit $rc$([ $rc -eq 124 ] && echo " (over its $limit s)")"; status=1
  fi
}

if want build; then
  step "build for sm_${ARCH/./} (no emulation)"
  FUSEDATTN_CUDA_ARCHS=$ARCH FUSEDATTN_BUILD_EMULATION=0 MAX_JOBS=16 \
    run 180 build $PY -m pip install -q --no-build-isolation --no-deps -e .
  $PY -m fusedattn env > "$OUT/$STAMP-env.txt" 2>&1
  grep -E "cuda_built|GPU arch|extension" "$OUT/$STAMP-env.txt"
fi
if want report; then
  step "static SASS report, in the background (CPU)"
  ( timeout 240 $PY -m fusedattn sass-report --jobs 8 --json "$OUT/$STAMP-sass-report.json" \
      > "$OUT/$STAMP-sass-report.txt" 2>&1; echo "sass-report exit $?" >> "$OUT/$STAMP-sass-report.txt" ) &
  report_pid=$!
fi
if want tune; then
  step "tuner"
  run 50 tune $PY -m fusedattn tune > "$OUT/$STAMP-tune.txt" 2>&1
  tail -15 "$OUT/$STAMP-tune.txt"
  cp "$FUSEDATTN_CACHE_DIR/tuning.json" "$OUT/$STAMP-tuning.json" 2>/dev/null
fi
if want test; then
  step "test suite on the GPU"
  FUSEDATTN_EXPECT_CUDA_BUILD=1 run 110 tests $PY -m pytest tests -q -x -p no:cacheprovider \
    --ignore=tests/test_emulation.py --ignore=tests/test_sass_report.py \
    --junitxml="$OUT/$STAMP-tests.xml" > "$OUT/$STAMP-tests.txt" 2>&1
  tail -15 "$OUT/$STAMP-tests.txt"
fi
if want sanitizer; then
  step "compute-sanitizer"
  run 50 sanitizer bash tests/gpu/run_sanitizer.sh > "$OUT/$STAMP-sanitizer.txt" 2>&1
  tail -12 "$OUT/$STAMP-sanitizer.txt"
fi
if want bench; then
  step "benchmarks (spec shapes, bfloat16, timed interleaved)"
  for op in attention_pool channel_attention; do
    run 45 "bench $op" $PY -m fusedattn bench --op "$op" --shapes spec --dtype bfloat16 \
      --modes forward,forward+backward --min-time 0.05 --json "$OUT/$STAMP-$op-bf16.json" \
      > "$OUT/$STAMP-$op-bench.txt" 2>&1
    grep -v "it/s" "$OUT/$STAMP-$op-bench.txt" | tail -30
  done
fi
if want report; then
  step "waiting for the SASS report"
  wait "$report_pid"
  tail -3 "$OUT/$STAMP-sass-report.txt"
fi
step "done"
ls -la "$OUT" | tail -12
exit $status
