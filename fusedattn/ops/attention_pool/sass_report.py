"""attention_pool's part of the static SASS report (python -m fusedattn sass-report): which
sources hold its CUDA kernels, how to name a compiled kernel (kernel, dtype, variant), which
kernels stream the B x C x N tensors, and the launches of a call at a shape, from the plan the
CUDA host code itself uses (csrc/attention_pool/cuda/plan.h, printed by plan_dump.cc) and from
the Triton launchers."""

from __future__ import annotations

import re
from typing import Optional

import torch

from .benchmarks import SHAPE_SETS, floor_bytes
from ...sass_report.report import feature_strides

OP = "attention_pool"
CUDA_SOURCES = ("attention_pool/cuda/forward.cu", "attention_pool/cuda/backward.cu")
PLAN_PROGRAM = ("attention_pool/cuda/plan.cpp", "attention_pool/cuda/plan_dump.cc")
STREAMING = {"pool_kernel", "features_kernel", "grad_features_kernel"}
LOADS = ("nchw", "nhwc", "flat", "scalar")
ALIGNED_LOADS = ("nchw", "nhwc", "flat")
SHAPES = SHAPE_SETS["spec"]
LAYOUTS = ("contiguous", "channels_last")
# The shape at which a B = 1 call must fill the GPU (the target: >= 1 CTA per SM).
B1_SHAPE = "1,1024,20x20,8"
MODES = {"forward": ("forward",), "forward+backward": ("forward", "backward")}
# The pool variant whose blocks stream several channel tiles (kStreamTiles; the flat variant
# always does, under its own name), and the one that computes its samples' statistics
# (kOwnStats)
STREAMING_SUFFIX = "/tiles"
OWN_STATS_SUFFIX = "/stats"
# The epilogue's kernels that hold each pixel's maps in registers (kHeld)
HELD_VARIANT = "held"
EPILOGUE_KERNELS = {"gather", "logits", "epilogue"}
_DTYPES = {"__nv_bfloat16": "bfloat16", "__half": "float16", "float": "float32"}


def identify_cuda(name: str) -> Optional[dict]:
    """Kernel, dtype and variant of a demangled attention_pool kernel name, else None."""
    m = re.search(r"attention_pool::cuda::(?:\(anonymous namespace\)::)?(\w+)<([^>]*)>\(", name)
    if m is None:
        return None
    args = [a.strip() for a in m.group(2).split(",")]
    variant = ""
    if len(args) == 2:  # (T, kHeld): the epilogue's kernels
        variant = HELD_VARIANT if args[1] == "true" else ""
    elif len(args) >= 3:  # (T, map tiles, feature load[, pool's kStreamTiles, kOwnStats])
        load = LOADS[int(re.search(r"(\d+)$", args[2]).group(1))]
        variant = f"{load}/maps{8 * int(args[1])}"
        if args[3:4] == ["true"]:
            variant += STREAMING_SUFFIX
        if args[4:5] == ["true"]:
            variant += OWN_STATS_SUFFIX
    return {"kernel": m.group(1), "dtype": _DTYPES.get(args[0], args[0]), "variant": variant,
            "streams_features": m.group(1) in STREAMING,
            "aligned": variant.split("/")[0] in ALIGNED_LOADS if "/" in variant else None}


def plan_arguments(shape, layout: str, element_size: int, sms: int) -> tuple:
    """The command line of plan_dump.cc: B C K N element_size sb sc sn sm_count."""
    return (shape.B, shape.C, shape.K, shape.N, element_size, *feature_strides(shape, layout), sms)


def cuda_launches(plan: dict, mode: str, dtype: str) -> list[dict]:
    """The launches of `mode` ("forward" or "backward") of a plan, each with the (kernel, dtype,
    variant) of the compiled kernel it runs."""
    load = plan["load"] if mode == "forward" else plan["backward_load"]
    variant = f"{load}/maps{8 * plan['map_tiles']}"
    out = []
    for launch in plan[mode]:
        if launch["grid"][0] == 0:
            continue
        pool = launch["name"] == "pool"
        suffix = ((STREAMING_SUFFIX if pool and plan["pool_streams_tiles"] else "") +
                  (OWN_STATS_SUFFIX if pool and plan["pool_own_stats"] else ""))
        held = launch["name"] in EPILOGUE_KERNELS and plan["epilogue_held_maps"]
        out.append({**launch, "dtype": dtype,
                    "variant": (variant + suffix if launch["tiled"]
                                else HELD_VARIANT if held else ""),
                    "ctas": launch["grid"][0] * launch["grid"][1]})
    return out


def floor(shape, dtype: torch.dtype, mode: str) -> int:
    return floor_bytes(shape, dtype, mode)


def triton_launches(shape, layout: str, dtype: torch.dtype, part: str, sms: int) -> list:
    """The Triton launches (fusedattn._triton.Launch) of `part` of a call at `shape`, built by
    the launchers themselves over CPU tensors of the call's shapes and strides (never touched:
    torch.empty) for a GPU of `sms` SMs."""
    from . import autograd, triton_kernels as tk
    B, C, K, N = shape.B, shape.C, shape.K, shape.N
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    f = torch.empty((B, C, shape.H, shape.W), dtype=dtype, memory_format=memory_format).flatten(2)
    a = torch.empty((B, K, N), dtype=dtype)
    pooled, importance, diversity, lse = autograd.forward_fake(f, a, "sum", True)
    if part == "forward":
        return tk.forward_launches(f, a, pooled, importance, lse, diversity, "sum", True,
                                   programs=2 * sms)
    gf, ga = autograd.backward_fake(pooled, importance, diversity, f, a, importance, lse, "sum")
    return tk.backward_launches(pooled, importance, diversity, f, a, importance, lse, gf, ga,
                                "sum", programs=2 * sms)


def triton_aligned(shape, layout: str) -> bool:
    """Whether the features' non-unit stride lets Triton load 16-byte vectors (divisible by 16
    elements, which its specialization marks)."""
    sb, sc, sn = feature_strides(shape, layout)
    return (sc if sn == 1 else sn) % 16 == 0

