"""attention_pool in the pytest-benchmark suite: every backend beside eager PyTorch and
torch.compile of the reference, per (shape, dtype, layout, mode) group, with the byte floor
and the group's interleaved ratios in extra_info (see conftest.py)."""

from conftest import run_benchmark

OP = "attention_pool"


def test_attention_pool(benchmark, shape, dtype, impl, mode, device, layout, copy_bandwidth,
                        environment, interleaved):
    run_benchmark(benchmark, OP, shape, dtype, impl, mode, device, layout, copy_bandwidth,
                  environment, interleaved)
