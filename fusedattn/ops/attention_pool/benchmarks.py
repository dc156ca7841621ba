"""attention_pool's benchmark harness (used by fusedattn.benchmarking, `python -m fusedattn
bench` and benchmarks/): the spec's shapes, the byte floor, and a case per implementation (each
backend, eager PyTorch and torch.compile of the reference)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ...backends import available_backends
from ...benchmarking import (BASELINES, compile_for_benchmark, make_case as _make_case,
                             rotation_count)
from . import attention_pool, reference
from .testing import make_inputs

OP = "attention_pool"


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
        """"B,C,HxW,K" (as in the spec's table) or "B,C,H,W,K"."""
        parts = text.replace("x", ",").split(",")
        if len(parts) != 5:
            raise ValueError(f"an attention_pool shape is 'B,C,HxW,K', got {text!r}")
        return cls(*(int(p) for p in parts))


SPEC_SHAPES = tuple(Shape(*s) for s in [
    (1, 1024, 20, 20, 8), (32, 1024, 20, 20, 8), (256, 1024, 20, 20, 8),
    (256, 1024, 20, 20, 32), (128, 2048, 7, 7, 8), (64, 256, 56, 56, 8)])
SHAPE_SETS = {
    "spec": SPEC_SHAPES,  # docs/attention_pool.md's table (GPU)
    # Sized for a 2-core CPU: the whole default CPU report finishes in well under a minute.
    "cpu": tuple(Shape(*s) for s in [(1, 256, 20, 20, 8), (8, 512, 14, 14, 8),
                                     (32, 1024, 20, 20, 8)]),
    # `make test`: tiny, so every mode runs in seconds and cannot rot.
    "quick": (Shape(2, 32, 7, 9, 5),),
    # Per-call host overhead (the work is negligible): compared with
    # F.scaled_dot_product_attention on the same device.
    "overhead": (Shape(2, 8, 4, 4, 3),),  # (no input rotation: see make_case)
}


def floor_bytes(shape: Shape, dtype: torch.dtype, mode: str) -> int:
    """The fewest bytes a fused implementation moves (docs/attention_pool.md, "The floor")."""
    e = torch.empty((), dtype=dtype).element_size()
    F = shape.B * shape.C * shape.N * e
    A = shape.B * shape.K * shape.N * e
    V = shape.B * shape.K * shape.C * e
    fwd, bwd = F + A + V, 2 * F + 2 * A + V
    return {"forward": fwd, "inference": fwd, "backward": bwd, "forward+backward": fwd + bwd}[mode]


def implementations(device) -> list[str]:
    """What a report compares on `device`: the fused backends that run there, then the
    baselines users have today."""
    fused = [b for b in available_backends(device, OP) if b != "reference"]
    return fused + list(BASELINES)


def _reference(f, a):
    return reference.attention_pool(f, a, "sum", True)


def call_for(impl: str) -> Callable:
    """(features, attn_logits) -> outputs, for a backend or a baseline."""
    if impl == "eager":
        return _reference
    if impl == "torch.compile":
        return compile_for_benchmark(_reference)
    return lambda f, a: tuple(attention_pool(f, a, backend=impl))


def make_case(impl: str, shape: Shape, dtype: torch.dtype, device, mode: str,
              layout: str = "contiguous") -> Callable[[], object]:
    """`mode` of `impl` at `shape`, rotating among enough input sets to stay out of cache."""
    device = torch.device(device)
    sets = []
    # A shape of the "overhead" set measures host time: one input set, as a serving loop has,
    # and the scalar loss of a training step (as sdpa_case does for its yardstick).
    overhead = shape in SHAPE_SETS["overhead"]
    n_sets = 1 if overhead else rotation_count(device, floor_bytes(shape, dtype, "forward"))
    for seed in range(n_sets):
        f, a = make_inputs(shape.B, shape.C, shape.H, shape.W, shape.K, dtype=dtype,
                           layout=layout, device=device, seed=seed)
        grad = mode not in ("forward", "inference")
        sets.append((f.requires_grad_(grad), a.requires_grad_(grad)))
    return _make_case(call_for(impl), sets, mode, scalar_loss=overhead)
