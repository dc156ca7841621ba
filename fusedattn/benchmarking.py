"""Benchmark plumbing shared by every op, `python -m fusedattn bench` and the pytest-benchmark
suite (benchmarks/): interleaved timing (device events on a GPU), cases that run a mode the way
training does, input rotation past the cache, the measured copy bandwidth, peak memory and
environment facts. Each op's harness (fusedattn/ops/<op>/benchmarks.py) adds its shapes, byte
floor and the implementations it compares.

Implementations are always timed interleaved: round after round, each runs a block of calls in
turn, so load that comes and goes on a shared machine lands on all of them alike and the ratios
of one run can be trusted even when the absolute times cannot.
"""

from __future__ import annotations

import importlib
import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

import torch

# "inference": the forward under torch.inference_mode (no autograd at all), as served models run.
MODES = ("forward", "backward", "forward+backward", "inference")
BASELINES = ("eager", "torch.compile")


def suite(op: str):
    """An op's benchmark harness: fusedattn.ops.<op>.benchmarks."""
    return importlib.import_module(f"fusedattn.ops.{op}.benchmarks")


def cache_bytes(device: torch.device) -> int:
    """The last-level cache inputs must not fit in (L2 on a GPU, a generous LLC on a CPU)."""
    if device.type == "cuda":
        return getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 << 20)
    return 32 << 20


def rotation_count(device, bytes_per_set: int) -> int:
    """How many input sets a case rotates among so that they do not fit in the cache together
    (small shapes are then not timed from cache)."""
    return max(1, min(512, math.ceil(3 * cache_bytes(torch.device(device)) /
                                     max(bytes_per_set, 1))))


def make_case(call: Callable, input_sets: Sequence[tuple], mode: str,
              scalar_loss: bool = False) -> Callable[[], object]:
    """A no-argument callable that runs `mode` of `call(*inputs)` once, on the next input set.

    Gradients are taken as training takes them: .grad reset to None, then backward()
    accumulating into it (as loss.backward() after optimizer.zero_grad() does), so a baseline's
    layout copy of a gradient is counted. The loss is sum_i <output_i, cotangent_i> with random
    cotangents (backpropagated without materializing it), or with scalar_loss the sum of every
    output's sum, as a training step writes it (for per-call overhead, where how the loss is
    made is part of the cost). "backward" times the backward alone, from outputs (and graphs)
    made beforehand."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    prepared = []
    for inputs in input_sets:
        if mode in ("forward", "inference"):
            prepared.append((inputs,))
            continue
        leaves = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
        outputs = [t for t in call(*inputs) if t is not None]
        cotangents = [torch.randn_like(t) for t in outputs]  # made once: not part of the timing
        prepared.append((inputs, leaves, outputs if mode == "backward" else None, cotangents))
    counter = [0]

    def next_set():
        counter[0] = (counter[0] + 1) % len(prepared)
        return prepared[counter[0]]

    if mode == "forward":
        def run():
            with torch.no_grad():
                return call(*next_set()[0])
    elif mode == "inference":
        def run():
            with torch.inference_mode():
                return call(*next_set()[0])
    elif mode == "backward":
        def run():
            _, leaves, outputs, cotangents = next_set()
            for t in leaves:
                t.grad = None
            torch.autograd.backward(outputs, cotangents, retain_graph=True)
    elif scalar_loss:
        def run():
            inputs, leaves, _, _ = next_set()
            for t in leaves:
                t.grad = None
            sum(t.sum() for t in call(*inputs) if t is not None).backward()
    else:
        def run():
            inputs, leaves, _, cotangents = next_set()
            for t in leaves:
                t.grad = None
            outputs = [t for t in call(*inputs) if t is not None]
            torch.autograd.backward(outputs, cotangents)
    return run


def sdpa_case(device, mode: str) -> Callable[[], object]:
    """F.scaled_dot_product_attention on tiny (2, 2, 8, 16) inputs: the yardstick of per-call
    host overhead (the work is negligible, so the time is Python, dispatch, autograd and
    allocation), compared with an op's "overhead" shape in the same interleaved run."""
    g = torch.Generator().manual_seed(0)
    qkv = [torch.randn(2, 2, 8, 16, generator=g).to(device).requires_grad_(mode != "inference")
           for _ in range(3)]
    return make_case(lambda q, k, v: (torch.nn.functional.scaled_dot_product_attention(q, k, v),),
                     [tuple(qkv)], mode, scalar_loss=True)


def compile_for_benchmark(fn: Callable) -> Callable:
    """torch.compile of a baseline, as a user would compile it, except that its backward keeps
    its saved buffers (donated buffers would forbid the retained graph that "backward" times)."""
    import torch._functorch.config as functorch_config

    torch._dynamo.reset()  # every case compiles the same code: keep clear of recompile limits
    compiled = torch.compile(fn, dynamic=False)

    def call(*args):
        with functorch_config.patch(donated_buffer=False):
            return compiled(*args)

    return call


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_block(fn: Callable, calls: int, device: torch.device) -> float:
    """Seconds per call of `calls` back-to-back calls (device events on a GPU)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3 / calls
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def time_interleaved(fns: Mapping[str, Callable[[], object]], device="cpu",
                     min_time_s: float = 0.2, block_s: float = 0.01,
                     max_rounds: int = 200) -> dict:
    """Times every function in `fns` interleaved: after a warm-up, rounds in which each function
    runs a block of back-to-back calls (about block_s long) in turn, the order rotating from
    round to round, until every function has had min_time_s of blocks (at least 5 rounds).
    Returns {name: {"p50", "p20", "p80" (microseconds per call, over the blocks), "rounds"}}."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is not None:
        with torch.cuda.device(device):
            return time_interleaved(fns, torch.device("cuda"), min_time_s, block_s, max_rounds)
    names = list(fns)
    calls = {}
    for name in names:  # warm-up (compilation, allocator growth), then the block size
        fns[name]()
        _synchronize(device)
        once = _time_block(fns[name], 1, device)
        calls[name] = max(1, min(10_000, int(block_s / max(once, 1e-7))))
    rounds = max(5, min(max_rounds, math.ceil(min_time_s / block_s)))
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(_time_block(fns[name], calls[name], device) * 1e6)
    out = {}
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=10) if len(ts) >= 2 else ts * 9
        out[name] = {"p50": statistics.median(ts), "p20": q[1], "p80": q[7], "rounds": len(ts)}
    return out


def time_us(fn: Callable[[], object], device="cpu", min_time_s: float = 0.2) -> dict:
    """time_interleaved of a single function."""
    return time_interleaved({"fn": fn}, device, min_time_s)["fn"]


def copy_bandwidth(device, nbytes: int | None = None) -> float:
    """Bytes per second of a device-to-device copy, counting read + write: the ceiling every
    floor is measured against."""
    device = torch.device(device)
    nbytes = nbytes or ((1 << 30) if device.type == "cuda" else (256 << 20))
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    t = time_us(lambda: dst.copy_(src), device, min_time_s=0.2)["p50"]
    return 2 * nbytes / (t * 1e-6)


def peak_memory(fn: Callable[[], object], device) -> int | None:
    device = torch.device(device)
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def environment(device="cpu") -> dict:
    """Versions and hardware, for every result and bug report."""
    device = torch.device(device)
    env = {"torch": torch.__version__, "cuda": torch.version.cuda,
           "python": platform.python_version(), "platform": platform.platform(),
           "device": str(device)}
    try:
        import triton
        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if device.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_arch=f"sm_{props.major}{props.minor}",
                   gpu_memory_gb=round(props.total_memory / 2**30, 1),
                   sm_count=props.multi_processor_count)
        try:  # e.g. 13000 for a CUDA 13.0 driver
            env["driver_cuda"] = torch._C._cuda_getDriverVersion()
        except (AttributeError, RuntimeError):
            env["driver_cuda"] = None
    else:
        env["cpu"] = platform.processor() or platform.machine()
        env["threads"] = torch.get_num_threads()
    return env


@dataclass
class Result:
    op: str
    shape: str
    dtype: str
    layout: str
    mode: str
    impl: str
    p50_us: float
    p20_us: float
    p80_us: float
    floor_bytes: int
    tbps: float               # floor bytes / p50: the effective bandwidth
    pct_of_copy: float        # tbps against the measured copy bandwidth
    ratio_to_floor: float     # p50 / (floor bytes / copy bandwidth)
    peak_mem_bytes: int | None
    speedup_vs_eager: float | None = None
    speedup_vs_compile: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def measure_group(op: str, shape, dtype: torch.dtype, device, mode: str, layout: str,
                  impls: Sequence[str], copy_bps: float, min_time_s: float = 0.2,
                  on_error: Callable[[str, Exception], None] | None = None,
                  make: Callable | None = None) -> list:
    """Every implementation of one (op, shape, dtype, mode, layout) group, timed interleaved;
    results with their speedups over eager and torch.compile from this same run. An
    implementation that fails to build is reported to on_error (or raised) and left out.
    make(op, impl, shape, dtype, device, mode, layout) builds a case (default: the op
    harness's make_case)."""
    harness = suite(op)
    cases = {}
    for impl in impls:
        try:
            cases[impl] = (make(op, impl, shape, dtype, device, mode, layout) if make else
                           harness.make_case(impl, shape, dtype, device, mode, layout))
        except Exception as exc:  # noqa: BLE001 -- one failing impl must not hide the others
            if on_error is None:
                raise
            on_error(impl, exc)
    times = time_interleaved(cases, device, min_time_s)
    nbytes = harness.floor_bytes(shape, dtype, mode)
    floor_us = nbytes / copy_bps * 1e6
    results = []
    for impl, t in times.items():
        tbps = nbytes / (t["p50"] * 1e-6) / 1e12
        results.append(Result(op, shape.label, str(dtype).replace("torch.", ""), layout, mode,
                              impl, t["p50"], t["p20"], t["p80"], nbytes, tbps,
                              100 * tbps * 1e12 / copy_bps, t["p50"] / floor_us,
                              peak_memory(cases[impl], device)))
    by_impl = {r.impl: r for r in results}
    for r in results:
        for base, attr in (("eager", "speedup_vs_eager"), ("torch.compile", "speedup_vs_compile")):
            if base in by_impl:
                setattr(r, attr, by_impl[base].p50_us / r.p50_us)
    return results
