"""channel_attention's part of the static SASS report (python -m fusedattn sass-report): which
sources hold its CUDA kernels, how to name a compiled kernel (kernel, dtype, variant), which
kernels stream the B x C x N tensors, and the launches of a call at a shape, from the plan the
CUDA host code itself uses (csrc/channel_attention/cuda/plan.h, printed by plan_dump.cc).

The op is elementwise and reductions (a squeeze, a tiny MLP, an excite): no kernel has a matrix
product, so none is expected to use tensor cores (TENSOR_CORE_KERNELS is empty;
docs/channel_attention.md, "The kernels")."""

from __future__ import annotations

import re
from typing import Optional

import torch

from .benchmarks import SHAPE_SETS
from ...sass_report.report import feature_strides

OP = "channel_attention"
CUDA_SOURCES = ("channel_attention/cuda/streaming.cu", "channel_attention/cuda/mlp.cu")
PLAN_PROGRAM = ("channel_attention/cuda/plan.cpp", "channel_attention/cuda/plan_dump.cc")
STREAMING = {"channel_attention_squeeze_kernel", "channel_attention_excite_kernel"}
# The kernels whose 16-bit variants must use tensor cores: none (no matrix product anywhere;
# the MLP is a few thousand FP32 multiply-adds per sample).
TENSOR_CORE_KERNELS: frozenset = frozenset()
SHAPES = SHAPE_SETS["spec"]
LAYOUTS = ("contiguous", "channels_last")
# IR-SE50's largest SE shape at B = 1: the B = 1 call that must fill the GPU.
B1_SHAPE = "1,64,56x56,4"
MODES = {"forward": ("forward",), "forward+backward": ("forward", "backward")}
# The L2 the plan sizes its batch chunks by (an H100/H200 reports 50 MiB: the chunk's slab(s)
# fit in half of it; docs/channel_attention.md, "The floor").
L2_CACHE_BYTES = 50 * 1024 * 1024
_DTYPES = {"__nv_bfloat16": "bfloat16", "__half": "float16", "float": "float32"}
# The streaming kernels' template argument kVariant (plan.h's SqueezeVariant and ExciteVariant)
# -> the variant's name, as plan_dump.cc names the variant a launch uses.
_VARIANTS = {
    "channel_attention_squeeze_kernel": {0: "channels", 1: "channel_vectors", 2: "pixel_rows",
                                         3: "pixel_rows_misaligned"},
    "channel_attention_excite_kernel": {0: "strided", 1: "nchw_vectors",
                                        2: "channels_last_vectors"},
}
# The variants whose main loops stream only 16-byte vectors (the tensors dense or their rows
# sharing a 16-byte alignment); the rest read element by element (any strides), or element by
# element where a's and b's rows differ in alignment (pixel_rows_misaligned).
ALIGNED_VARIANTS = {"pixel_rows", "channel_vectors", "nchw_vectors", "channels_last_vectors"}


def identify_cuda(name: str) -> Optional[dict]:
    """Kernel, dtype and variant of a demangled channel_attention kernel name, else None."""
    m = re.search(r"channel_attention::cuda::(?:\(anonymous namespace\)::)?"
                  r"(channel_attention_\w+_kernel)(?:<([^>]*)>)?\(", name)
    if m is None:
        return None
    kernel = m.group(1)
    args = [a.strip() for a in m.group(2).split(",")] if m.group(2) else []
    # The parameters' gradients are summed in float32 whatever the input dtype.
    dtype = _DTYPES.get(args[0], args[0]) if args else "float32"
    variant = ""
    if kernel in _VARIANTS:
        # (a demangled enum argument may read "(fusedattn::...::SqueezeVariant)2")
        variant = _VARIANTS[kernel][int(re.sub(r"^\(.*\)", "", args[1]))]
    streams = kernel in STREAMING
    return {"kernel": kernel, "dtype": dtype, "variant": variant, "streams_features": streams,
            "aligned": variant in ALIGNED_VARIANTS if streams else None}


def plan_arguments(shape, layout: str, element_size: int, sms: int) -> tuple:
    """The command line of plan_dump.cc: B C N R element_size weight_size sb sc sn sm_count
    l2_cache_bytes (the parameters in x's dtype, as the benchmarks make them)."""
    return (shape.B, shape.C, shape.N, shape.R, element_size, element_size,
            *feature_strides(shape, layout), sms, L2_CACHE_BYTES)


def cuda_launches(plan: dict, mode: str, dtype: str) -> list[dict]:
    """The launches of `mode` ("forward" or "backward") of a plan, each with the (kernel, dtype,
    variant) of the compiled kernel it runs."""
    part = plan[mode]
    out = []
    for launch in part["launches"]:
        if launch["grid"][0] == 0:
            continue
        kernel = launch["kernel"]
        variant = (part["squeeze_variant"] if kernel == "channel_attention_squeeze_kernel"
                   else part["excite_variant"] if kernel == "channel_attention_excite_kernel"
                   else "")
        out.append({**launch, "dtype": "float32" if kernel.endswith("weight_grad_kernel")
                    else dtype, "variant": variant,
                    "ctas": launch["grid"][0] * launch["grid"][1]})
    return out


def slab_in_l2(shape, element_size: int, slab_tensors: int) -> bool:
    """Whether one sample's slab(s) fit in half the L2 (plan.h's slab_in_l2)."""
    return slab_tensors * shape.C * shape.N * element_size <= L2_CACHE_BYTES // 2


def floor(shape, dtype: torch.dtype, mode: str) -> int:
    """The floor the cuda backend is held to (docs/channel_attention.md, "The floor"): 2X
    forward and 3X backward where a sample's slab(s) stay in L2 between the passes, else 3X and
    4X (X = bytes(x))."""
    e = torch.empty((), dtype=dtype).element_size()
    X = shape.B * shape.C * shape.N * e
    forward = 2 * X if slab_in_l2(shape, e, 1) else 3 * X
    backward = 3 * X if slab_in_l2(shape, e, 2) else 4 * X
    return {"forward": forward, "forward+backward": forward + backward}[mode]


def triton_launches(shape, layout: str, dtype: torch.dtype, part: str, sms: int) -> list:
    """The Triton launches (fusedattn._triton.Launch) of `part` of a call at `shape` (the
    benchmarks' parameters: in x's dtype, with biases), built by the launchers themselves over
    CPU tensors of the call's shapes and strides (never touched: torch.empty) for a GPU of `sms`
    SMs."""
    from . import autograd, triton_kernels as tk
    B, C, R = shape.B, shape.C, shape.R
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.empty((B, C, shape.H, shape.W), dtype=dtype, memory_format=memory_format)
    w1, w2 = torch.empty((R, C, 1, 1), dtype=dtype), torch.empty((C, R, 1, 1), dtype=dtype)
    b1, b2 = torch.empty((R,), dtype=dtype), torch.empty((C,), dtype=dtype)
    y, squeezed, hidden, logits = autograd.forward_fake(x, w1, b1, w2, b2, "relu", "sigmoid")
    if part == "forward":
        return tk.forward_launches(x, w1, b1, w2, b2, y, squeezed, hidden, logits, "relu",
                                   "sigmoid", programs=2 * sms)
    gx, gw1, gb1, gw2, gb2 = autograd.backward_fake(y, x, w1, w2, squeezed, hidden, logits,
                                                    "relu", "sigmoid")
    return tk.backward_launches(y, x, w1, w2, squeezed, hidden, logits, gx, gw1, gb1, gw2, gb2,
                                "relu", "sigmoid", programs=2 * sms)


def triton_aligned(shape, layout: str) -> bool:
    """Whether x's non-unit stride lets Triton load 16-byte vectors (divisible by 16 elements,
    which its specialization marks)."""
    sb, sc, sn = feature_strides(shape, layout)
    return (sc if sn == 1 else sn) % 16 == 0
