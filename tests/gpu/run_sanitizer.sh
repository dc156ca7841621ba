#!/usr/bin/env bash
# The CUDA kernels of every op under compute-sanitizer (memcheck and racecheck) on small
# shapes: every dtype, both layouts, odd sizes, ties, B = 0, forward and backward. Zero errors
# required. (B2C136H7W7K8: the forward whose "pool" computes small maps' statistics;
# B1C72H20W20K8: split tiles added by their last block.)
#   bash tests/gpu/run_sanitizer.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
SELECT='cuda and (B2C17H7W9K5 or B1C1H1W1K1 or B2C40H5W4K33 or B1C70H6W7K130 or B2C136H7W7K8 or B1C72H20W20K8 or zero or empty or large_logits)'
for tool in memcheck racecheck; do
  echo "== compute-sanitizer --tool $tool"
  compute-sanitizer --tool "$tool" --error-exitcode 9 --print-limit 20 \
    "$PY" -m pytest -q -p no:cacheprovider tests/attention_pool/test_suite.py \
    tests/channel_attention/test_suite.py -k "$SELECT"
done
