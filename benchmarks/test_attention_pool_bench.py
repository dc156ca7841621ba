"""pytest-benchmark suite: every backend beside eager PyTorch and torch.compile of the
reference, per (shape, dtype, layout, mode) group, with the byte floor in extra_info.

On a GPU each timed round runs the case `iterations` times and then synchronizes (the timer
itself synchronizes), so the device time is measured, not the launch; inputs rotate among
enough sets that they do not sit in L2."""

import math

import pytest
import torch

from fusedattn import benchmarking as bm


def cuda_synchronized_timer():
    """perf_counter after the GPU has finished: pytest-benchmark's timer on CUDA devices."""
    torch.cuda.synchronize()
    import time
    return time.perf_counter()


def test_attention_pool(benchmark, shape, dtype, impl, mode, device, layout, copy_bandwidth,
                        environment):
    if impl not in bm.implementations(device) + ["reference"]:
        pytest.skip(f"{impl} cannot run on {device} here")
    if impl == "torch.compile" and device.type == "cpu" and shape.B * shape.C * shape.N > 1e6:
        pytest.skip("torch.compile of the reference is slow to build on CPU for this shape")
    fn = bm.build_case(impl, shape, dtype, device, mode, layout)
    fn()  # warm-up: compilation and autotuning stay out of the numbers
    benchmark.group = f"{shape.label} {str(dtype)[6:]} {layout} {mode}"
    if device.type == "cuda":
        benchmark._timer = cuda_synchronized_timer
        once = bm.time_us(fn, device, min_time_s=0.05)["p50"]
        iterations = max(1, int(2000 / max(once, 1.0)))  # ~2 ms of work per round
        rounds = max(5, min(200, int(0.5e6 / (once * iterations))))
    else:
        iterations, rounds = 1, None
    if rounds is None:
        benchmark(fn)
    else:
        benchmark.pedantic(fn, iterations=iterations, rounds=rounds, warmup_rounds=1)
    if benchmark.stats is None:  # --benchmark-disable: the case ran once, untimed
        return
    median_s = benchmark.stats.stats.median
    floor = bm.floor_bytes(shape, dtype, mode)
    benchmark.extra_info.update(
        shape=shape.label, dtype=str(dtype)[6:], layout=layout, mode=mode, impl=impl,
        floor_bytes=floor, tbps=floor / median_s / 1e12,
        pct_of_copy=100 * floor / median_s / copy_bandwidth,
        ratio_to_floor=median_s / (floor / copy_bandwidth),
        copy_bandwidth_tbps=copy_bandwidth / 1e12,
        peak_mem_bytes=bm.peak_memory(fn, device), **environment)
    assert math.isfinite(median_s) and median_s > 0
