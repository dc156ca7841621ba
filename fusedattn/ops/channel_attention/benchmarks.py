"""channel_attention's benchmark harness (used by fusedattn.benchmarking, `python -m fusedattn
bench --op channel_attention` and benchmarks/): the SE shapes read off efficientnet_b0 and
mobilenet_v3_large (224x224) and IR-SE50 (112x112), the byte floor, and a case per
implementation (each backend, the SE block in eager PyTorch and under torch.compile)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ...backends import available_backends
from ...benchmarking import (BASELINES, compile_for_benchmark, make_case as _make_case,
                             rotation_count)
from . import channel_attention
from .testing import make_inputs

OP = "channel_attention"
BATCHES = (1, 32, 256)


@dataclass(frozen=True)
class Shape:
    B: int
    C: int
    H: int
    W: int
    R: int
    activation: str = "relu"
    gate: str = "sigmoid"

    @property
    def N(self) -> int:
        return self.H * self.W

    @property
    def label(self) -> str:
        return f"{self.B},{self.C},{self.H}x{self.W},{self.R}"

    @classmethod
    def parse(cls, text: str) -> "Shape":
        """"B,C,HxW,R" or "B,C,H,W,R" (relu and sigmoid)."""
        parts = text.replace("x", ",").split(",")
        if len(parts) != 5:
            raise ValueError(f"a channel_attention shape is 'B,C,HxW,R', got {text!r}")
        return cls(*(int(p) for p in parts))


def se_blocks(model: torch.nn.Module, image_size: int) -> list:
    """(C, H, W, R, activation, gate) of every SE block of `model`, in order, read off a forward
    of one image on the meta device (nothing computed, nothing downloaded)."""
    from ...nn import convert  # (importing fusedattn.nn registers every op's rule)
    from .nn import ChannelAttention

    convert(model)
    seen = []
    hooks = [m.register_forward_hook(
        lambda m, inputs, out: seen.append((*inputs[0].shape[1:], getattr(m, m.fc_names[0])
                                            .out_channels, m.activation, m.gate)))
        for m in model.modules() if isinstance(m, ChannelAttention)]
    model.to("meta").eval()(torch.empty(1, 3, image_size, image_size, device="meta"))
    for h in hooks:
        h.remove()
    return seen


def model_shapes(name: str) -> tuple:
    """The distinct SE shapes of a model at B = 1, 32, 256."""
    if name == "ir_se50":
        from .models import ir_se50
        model, size = ir_se50(), 112
    else:
        import torchvision
        model, size = getattr(torchvision.models, name)(), 224
    blocks = list(dict.fromkeys(se_blocks(model, size)))
    return tuple(Shape(B, C, H, W, R, act, gate) for B in BATCHES
                 for C, H, W, R, act, gate in blocks)


class _ShapeSets(Mapping):
    """Shape sets, the model-derived ones built on first use (the models are constructed then)."""

    FIXED = {
        # `make test`: tiny, so every mode runs in seconds and cannot rot.
        "quick": (Shape(2, 24, 7, 9, 6),),
        # Per-call host overhead (the work is negligible): compared with SDPA.
        "overhead": (Shape(2, 8, 4, 4, 2),),
    }
    MODELS = ("efficientnet_b0", "mobilenet_v3_large", "ir_se50")

    def __init__(self):
        self._built = dict(self.FIXED)

    def _build(self, key):
        if key in self.MODELS:
            return model_shapes(key)
        if key == "spec":  # the table (GPU): every model's SE shapes at B = 1, 32, 256
            return tuple(s for m in self.MODELS for s in self[m])
        if key == "cpu":  # the CPU target: IR-SE50's four SE shapes at B = 32
            return tuple(s for s in self["ir_se50"] if s.B == 32)
        raise KeyError(key)

    def __getitem__(self, key):
        if key not in self._built:
            self._built[key] = self._build(key)
        return self._built[key]

    def __iter__(self):
        return iter(("spec", "cpu", *self.FIXED, *self.MODELS))

    def __len__(self):
        return 4 + len(self.MODELS)


SHAPE_SETS = _ShapeSets()


def floor_bytes(shape: Shape, dtype: torch.dtype, mode: str) -> int:
    """The fewest bytes a fused implementation moves when each sample's (or batch chunk's) slab
    stays on chip between the passes (docs/channel_attention.md, "The floor"): forward
    bytes(x) + bytes(y), backward bytes(grad_y) + bytes(x) + bytes(grad_x); the parameters and
    the per-sample statistics are O(B (C + R) + C R) and left out."""
    e = torch.empty((), dtype=dtype).element_size()
    X = shape.B * shape.C * shape.N * e
    fwd, bwd = 2 * X, 3 * X
    return {"forward": fwd, "inference": fwd, "backward": bwd, "forward+backward": fwd + bwd}[mode]


def implementations(device) -> list:
    """What a report compares on `device`: the fused backends that run there, then the
    baselines users have today (the SE block as torchvision writes it, eager and compiled)."""
    fused = [b for b in available_backends(device, OP) if b != "reference"]
    return fused + list(BASELINES)


def se_block(x, w1, b1, w2, b2, activation="relu", gate="sigmoid"):
    """torchvision's SqueezeExcitation forward, functionally: the eager baseline."""
    scale = F.adaptive_avg_pool2d(x, 1)
    scale = F.conv2d(scale, w1, b1)
    scale = F.relu(scale) if activation == "relu" else F.silu(scale)
    scale = F.conv2d(scale, w2, b2)
    scale = torch.sigmoid(scale) if gate == "sigmoid" else F.hardsigmoid(scale)
    return scale * x


def call_for(impl: str, shape: Shape) -> Callable:
    """(x, w1, b1, w2, b2) -> (y,), for a backend or a baseline."""
    act, gate = shape.activation, shape.gate
    if impl == "eager":
        return lambda *a: (se_block(*a, act, gate),)
    if impl == "torch.compile":
        compiled = compile_for_benchmark(lambda *a: se_block(*a, act, gate))
        return lambda *a: (compiled(*a),)
    return lambda *a: (channel_attention(*a, activation=act, gate=gate, backend=impl),)


def make_case(impl: str, shape: Shape, dtype: torch.dtype, device, mode: str,
              layout: str = "contiguous") -> Callable[[], object]:
    """`mode` of `impl` at `shape`, rotating among enough input sets to stay out of cache."""
    device = torch.device(device)
    overhead = shape in SHAPE_SETS["overhead"]
    n_sets = 1 if overhead else rotation_count(device, floor_bytes(shape, dtype, "forward"))
    grad = mode not in ("forward", "inference")
    sets = []
    for seed in range(n_sets):
        inputs = make_inputs(shape.B, shape.C, shape.H, shape.W, shape.R, dtype=dtype,
                             layout=layout, device=device, seed=seed)
        sets.append(tuple(t.requires_grad_(grad) for t in inputs))
    return _make_case(call_for(impl, shape), sets, mode, scalar_loss=overhead)
