"""Benchmark plumbing shared by `python -m fusedattn` and the pytest-benchmark suite (benchmarks/):
the SPEC.md shapes, the byte floor, inputs, the implementations compared (each backend, eager
PyTorch and torch.compile of the reference), timing (device events on GPU) and environment facts.
"""

from __future__ import annotations

import math
import platform
import statistics
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from . import reference
from ._dispatch import attention_pool, available_backends
from .testing import make_inputs

MODES = ("forward", "backward", "forward+backward")
BASELINES = ("eager", "torch.compile")


@dataclass(frozen=True)
class Shape:
    B: int
    C: int
    H: int
    W: int
    K: int

    @property
    def N(self) -> int:
        return self.H * self.W

    @property
    def label(self) -> str:
        return f"{self.B},{self.C},{self.H}x{self.W},{self.K}"

    @classmethod
    def parse(cls, text: str) -> "Shape":
        """"B,C,HxW,K" (as in SPEC.md's table) or "B,C,H,W,K"."""
        parts = text.replace("x", ",").split(",")
        if len(parts) != 5:
            raise ValueError(f"a shape is 'B,C,HxW,K', got {text!r}")
        return cls(*(int(p) for p in parts))


SPEC_SHAPES = tuple(Shape(*s) for s in [
    (1, 1024, 20, 20, 8), (32, 1024, 20, 20, 8), (256, 1024, 20, 20, 8),
    (256, 1024, 20, 20, 32), (128, 2048, 7, 7, 8), (64, 256, 56, 56, 8)])
# Sized for a 2-core CPU: the whole default CPU report finishes in well under a minute.
CPU_SHAPES = tuple(Shape(*s) for s in [(1, 256, 20, 20, 8), (8, 512, 14, 14, 8),
                                       (32, 1024, 20, 20, 8)])


def floor_bytes(shape: Shape, dtype: torch.dtype, mode: str) -> int:
    """The fewest bytes a fused implementation moves (SPEC.md, "The floor")."""
    e = torch.empty((), dtype=dtype).element_size()
    F = shape.B * shape.C * shape.N * e
    A = shape.B * shape.K * shape.N * e
    V = shape.B * shape.K * shape.C * e
    fwd, bwd = F + A + V, 2 * F + 2 * A + V
    return {"forward": fwd, "backward": bwd, "forward+backward": fwd + bwd}[mode]


def implementations(device) -> list[str]:
    """What a report compares on `device`: the fused backends that run there, then the
    baselines users have today."""
    fused = [b for b in available_backends(device) if b != "reference"]
    return fused + list(BASELINES)


def _pool_fn(impl: str) -> Callable:
    if impl == "eager":
        return lambda f, a: reference.attention_pool(f.flatten(2), a.flatten(2), "sum", True)
    if impl == "torch.compile":
        # A fresh start per case: every case compiles this same code, and past dynamo's
        # recompile limit later cases would silently run eagerly.
        torch._dynamo.reset()
        return torch.compile(
            lambda f, a: reference.attention_pool(f.flatten(2), a.flatten(2), "sum", True),
            dynamic=False)
    return lambda f, a: tuple(attention_pool(f, a, backend=impl))


def _l2_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 << 20)
    return 32 << 20


def build_case(impl: str, shape: Shape, dtype: torch.dtype, device, mode: str,
               layout: str = "contiguous") -> Callable[[], object]:
    """A no-argument callable running `mode` once. It rotates among enough input sets that
    they do not fit in the last-level cache together (so small shapes are not timed from L2)."""
    device = torch.device(device)
    pool = _pool_fn(impl)
    per_set = floor_bytes(shape, dtype, "forward")
    n_sets = max(1, min(512, math.ceil(3 * _l2_bytes(device) / max(per_set, 1))))
    sets = []
    for i in range(n_sets):
        f, a = make_inputs(shape.B, shape.C, shape.H, shape.W, shape.K, dtype=dtype,
                           layout=layout, device=device, seed=i)
        if mode == "forward":
            sets.append((f, a))
            continue
        f.requires_grad_()
        a.requires_grad_()
        out = [t for t in pool(f, a) if t is not None]
        grads = [torch.randn_like(t) for t in out]  # made once: not part of what is timed
        sets.append((out, grads, (f, a)) if mode == "backward" else (f, a, grads))
    counter = [0]

    def next_set():
        counter[0] = (counter[0] + 1) % n_sets
        return sets[counter[0]]

    if mode == "forward":
        def run():
            with torch.no_grad():
                return pool(*next_set())
    elif mode == "backward":
        def run():
            out, grads, inputs = next_set()
            return torch.autograd.grad(out, inputs, grads, retain_graph=True)
    elif mode == "forward+backward":
        def run():
            f, a, grads = next_set()
            out = [t for t in pool(f, a) if t is not None]
            return torch.autograd.grad(out, (f, a), grads)
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return run


def time_us(fn: Callable[[], object], device, min_time_s: float = 0.2) -> dict:
    """Median and 20th/80th percentiles of fn's run time, in microseconds: CUDA events around
    each call on a GPU (after warm-up), torch.utils.benchmark's blocked timer on the CPU."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is not None:
        with torch.cuda.device(device):  # events and synchronization on the measured GPU
            return time_us(fn, torch.device("cuda"), min_time_s)
    fn()  # warm-up: compilation, autotuning and allocator growth stay out of the numbers
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        est = _cuda_time_once(fn)
        reps = int(max(10, min(2000, min_time_s * 1e6 / max(est, 1.0))))
        times = []
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for s, e in zip(starts, ends):
            s.record()
            fn()
            e.record()
        torch.cuda.synchronize(device)
        times = [s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends)]
    else:
        from torch.utils.benchmark import Timer

        m = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()
                  ).blocked_autorange(min_run_time=min_time_s)
        times = [t * 1e6 for t in m.times]
    q = statistics.quantiles(times, n=10) if len(times) >= 2 else times * 9
    return {"p50": statistics.median(times), "p20": q[1], "p80": q[7], "rounds": len(times)}


def _cuda_time_once(fn) -> float:
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    fn()
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) * 1e3


def copy_bandwidth(device, nbytes: int | None = None) -> float:
    """Bytes per second of a device-to-device copy, counting read + write (SPEC.md's ceiling)."""
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
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "platform": platform.platform(), "device": str(device)}
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


def measure(impl, shape, dtype, device, mode, layout, copy_bps, min_time_s=0.2) -> Result:
    fn = build_case(impl, shape, dtype, device, mode, layout)
    t = time_us(fn, device, min_time_s)
    nbytes = floor_bytes(shape, dtype, mode)
    tbps = nbytes / (t["p50"] * 1e-6) / 1e12
    floor_us = nbytes / copy_bps * 1e6
    return Result(shape.label, str(dtype).replace("torch.", ""), layout, mode, impl, t["p50"],
                  t["p20"], t["p80"], nbytes, tbps, 100 * tbps * 1e12 / copy_bps,
                  t["p50"] / floor_us, peak_memory(fn, device))


def add_speedups(results: list[Result]) -> None:
    by_key = {(r.shape, r.dtype, r.layout, r.mode, r.impl): r for r in results}
    for r in results:
        for base, attr in (("eager", "speedup_vs_eager"), ("torch.compile", "speedup_vs_compile")):
            b = by_key.get((r.shape, r.dtype, r.layout, r.mode, base))
            if b is not None:
                setattr(r, attr, b.p50_us / r.p50_us)
