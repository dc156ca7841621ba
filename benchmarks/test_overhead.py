"""Per-call host overhead of every op's public function on a tiny shape (the work is
negligible: the time is Python, validation, backend selection, autograd, the op call and
allocation), beside F.scaled_dot_product_attention on tiny inputs of the same device, timed
interleaved in one run: inference-mode forward, and forward+backward as training runs it.

    pytest benchmarks/test_overhead.py --benchmark-only

extra_info carries the interleaved ratio to SDPA (the targets: <= 1.0 for inference, <= 1.5
for forward+backward; measured, not asserted, on a shared machine)."""

import pytest

from fusedattn import backends, benchmarking as bm

MODES = ("inference", "forward+backward")
# (op, mode) -> (fused p50 us, SDPA p50 us, ratio), from one interleaved run each; conftest's
# terminal summary prints them.
RATIOS = {}


def _ratio(op, mode, device):
    """(op's p50, SDPA's p50, ratio) in microseconds, from one interleaved run per (op, mode)."""
    if (op, mode) not in RATIOS:
        harness = bm.suite(op)
        shape = harness.SHAPE_SETS["overhead"][0]
        import torch
        dtype = torch.float32
        times = bm.time_interleaved({
            op: harness.make_case(backends.available_backends(device, op)[0], shape, dtype,
                                  device, mode),
            "sdpa": bm.sdpa_case(device, mode)}, device, min_time_s=1.0)
        RATIOS[(op, mode)] = (times[op]["p50"], times["sdpa"]["p50"],
                              times[op]["p50"] / times["sdpa"]["p50"])
    return RATIOS[(op, mode)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", backends.ops())
@pytest.mark.parametrize("impl", ["fused", "sdpa"])
def test_overhead(benchmark, op, mode, impl, device, environment):
    import torch
    harness = bm.suite(op)
    shape = harness.SHAPE_SETS["overhead"][0]
    fn = (bm.sdpa_case(device, mode) if impl == "sdpa" else harness.make_case(
        backends.available_backends(device, op)[0], shape, torch.float32, device, mode))
    benchmark.group = f"overhead {op} {mode} ({device})"
    benchmark(fn)
    if benchmark.stats is None:
        return
    fused_us, sdpa_us, ratio = _ratio(op, mode, device)
    benchmark.extra_info.update(op=op, mode=mode, impl=impl, shape=shape.label,
                                interleaved_fused_us=fused_us, interleaved_sdpa_us=sdpa_us,
                                interleaved_ratio_to_sdpa=ratio, **environment)
