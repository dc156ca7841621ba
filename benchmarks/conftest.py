"""The pytest-benchmark suite of every op: options, parametrization and the shared test body.

    pytest benchmarks --benchmark-only                       # the default set for this machine
    pytest benchmarks --fa-shapes spec --fa-dtype bfloat16   # each op's spec shapes (GPU)
    pytest benchmarks --fa-shapes "32,1024,20x20,8" --fa-impls cpu,eager

Each test file names its op (OP = "..."); its shapes, floor and cases come from the op's
harness (fusedattn/ops/<op>/benchmarks.py). pytest-benchmark times each implementation on its
own; for ratios that load on a shared machine cannot flip, every group is also timed
interleaved (fusedattn.benchmarking.time_interleaved) and extra_info carries those ratios.
"""

import math

import pytest
import torch

from fusedattn import benchmarking as bm


def pytest_addoption(parser):
    g = parser.getgroup("fusedattn")
    g.addoption("--fa-device", default=None, help="cuda or cpu (default: cuda if present)")
    g.addoption("--fa-shapes", default=None,
                help="a shape set of each op (spec, cpu, quick) or shapes such as "
                     "'B,C,HxW,K;...' (default: spec on GPU, cpu on CPU)")
    g.addoption("--fa-dtype", default=None, action="append",
                help="float32, bfloat16, float16 (repeatable; default: bfloat16 and float32 on "
                     "GPU, float32 on CPU)")
    g.addoption("--fa-layout", default="contiguous", choices=["contiguous", "channels_last"])
    g.addoption("--fa-impls", default=None,
                help="comma-separated backends/baselines (default: every available fused "
                     "backend, reference, eager and torch.compile)")
    g.addoption("--fa-modes", default="forward,backward,forward+backward")


def _device(config):
    name = config.getoption("--fa-device") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _impls(config, harness, device):
    impls = config.getoption("--fa-impls")
    return impls.split(",") if impls else harness.implementations(device) + ["reference"]


def pytest_generate_tests(metafunc):
    op = getattr(metafunc.module, "OP", None)
    if op is None:
        return
    config = metafunc.config
    device = _device(config)
    harness = bm.suite(op)
    if "shape" in metafunc.fixturenames:
        spec = config.getoption("--fa-shapes") or ("spec" if device.type == "cuda" else "cpu")
        shapes = harness.SHAPE_SETS.get(spec) or tuple(harness.Shape.parse(s)
                                                      for s in spec.split(";"))
        metafunc.parametrize("shape", shapes, ids=[s.label for s in shapes])
    if "dtype" in metafunc.fixturenames:
        names = config.getoption("--fa-dtype") or (
            ["bfloat16", "float32"] if device.type == "cuda" else ["float32"])
        metafunc.parametrize("dtype", [getattr(torch, n) for n in names], ids=names)
    if "impl" in metafunc.fixturenames:
        metafunc.parametrize("impl", _impls(config, harness, device))
    if "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", config.getoption("--fa-modes").split(","))


@pytest.fixture(scope="session")
def device(request):
    return _device(request.config)


@pytest.fixture(scope="session")
def layout(request):
    return request.config.getoption("--fa-layout")


@pytest.fixture(scope="session")
def copy_bandwidth(device):
    """Bytes/s of a device-to-device copy in this run: the ceiling the floor is measured by."""
    return bm.copy_bandwidth(device)


@pytest.fixture(scope="session")
def environment(device):
    return bm.environment(device)


_CASES = {}


def case(op, impl, shape, dtype, device, mode, layout):
    """One case per (op, impl, shape, dtype, mode, layout) in the session, shared by the
    pytest-benchmark test and the interleaved group (a torch.compile case compiles once)."""
    key = (op, impl, shape, dtype, str(device), mode, layout)
    if key not in _CASES:
        _CASES[key] = bm.suite(op).make_case(impl, shape, dtype, device, mode, layout)
    return _CASES[key]


@pytest.fixture(scope="session")
def interleaved(request, device, layout, copy_bandwidth):
    """measure_group(op, shape, dtype, mode) of every implementation, timed interleaved, once
    per group: {impl: Result}."""
    groups = {}

    def measure(op, shape, dtype, mode):
        key = (op, shape, dtype, mode)
        if key not in groups:
            impls = [i for i in _impls(request.config, bm.suite(op), device)
                     if i in bm.suite(op).implementations(device) + ["reference"]]
            groups[key] = {r.impl: r for r in bm.measure_group(
                op, shape, dtype, device, mode, layout, impls, copy_bandwidth,
                min_time_s=0.05 if device.type == "cpu" else 0.2, make=case)}
        return groups[key]

    return measure


def cuda_synchronized_timer():
    """perf_counter after the GPU has finished: pytest-benchmark's timer on CUDA devices."""
    import time
    torch.cuda.synchronize()
    return time.perf_counter()


def run_benchmark(benchmark, op, shape, dtype, impl, mode, device, layout, copy_bandwidth,
                  environment, interleaved):
    """The body of every op's benchmark test: one implementation in one group, with the group's
    interleaved ratios and the byte floor in extra_info."""
    harness = bm.suite(op)
    if impl not in harness.implementations(device) + ["reference"]:
        pytest.skip(f"{impl} cannot run on {device} here")
    fn = case(op, impl, shape, dtype, device, mode, layout)
    fn()  # warm-up: compilation and autotuning stay out of the numbers
    benchmark.group = f"{op} {shape.label} {str(dtype)[6:]} {layout} {mode}"
    if device.type == "cuda":
        benchmark._timer = cuda_synchronized_timer
        once = bm.time_us(fn, device, min_time_s=0.05)["p50"]
        iterations = max(1, int(2000 / max(once, 1.0)))  # ~2 ms of work per round
        rounds = max(5, min(200, int(0.5e6 / (once * iterations))))
        benchmark.pedantic(fn, iterations=iterations, rounds=rounds, warmup_rounds=1)
    else:
        benchmark(fn)
    if benchmark.stats is None:  # --benchmark-disable: the case ran once, untimed
        return
    median_s = benchmark.stats.stats.median
    floor = harness.floor_bytes(shape, dtype, mode)
    group = interleaved(op, shape, dtype, mode)
    mine = group[impl]
    benchmark.extra_info.update(
        op=op, shape=shape.label, dtype=str(dtype)[6:], layout=layout, mode=mode, impl=impl,
        floor_bytes=floor, tbps=floor / median_s / 1e12,
        pct_of_copy=100 * floor / median_s / copy_bandwidth,
        ratio_to_floor=median_s / (floor / copy_bandwidth),
        copy_bandwidth_tbps=copy_bandwidth / 1e12,
        interleaved_p50_us=mine.p50_us,
        interleaved_speedup_vs_eager=mine.speedup_vs_eager,
        interleaved_speedup_vs_compile=mine.speedup_vs_compile,
        peak_mem_bytes=bm.peak_memory(fn, device), **environment)
    assert math.isfinite(median_s) and median_s > 0


def pytest_terminal_summary(terminalreporter):
    """The per-call overhead ratios to F.scaled_dot_product_attention (test_overhead.py), each
    from one interleaved run: the numbers the README quotes."""
    import test_overhead

    for (op, mode), (fused, sdpa, ratio) in sorted(test_overhead.RATIOS.items()):
        terminalreporter.write_line(
            f"overhead {op} {mode}: {fused:.1f} us vs F.scaled_dot_product_attention "
            f"{sdpa:.1f} us = {ratio:.2f}x (interleaved)")
