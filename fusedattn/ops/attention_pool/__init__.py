"""attention_pool: recalibrated attention pooling with a weighted diversity loss (Hörmann et al.,
"Attention-based Partial Face Recognition", ICIP 2021); the math in docs/attention_pool.md.

This folder is the whole op: the public function and its output type (here), validation, the
reference, the fused backends' shared fakes and autograd, the compiled (cpu, cuda) and Triton
backends, the nn modules, and the op's testing and benchmarking harnesses.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple, Optional

import torch

from ... import _library, _triton
from ..._autocast import autocast_dtype, cast
from ..._validation import SUPPORTED_DTYPES
from ...backends import Backend, register_backend, register_op, implementation
from .validation import validate_inputs

OP = "attention_pool"

class AttentionPoolOutput(NamedTuple):
    """pooled (B, K, C) in the features' dtype; importance (B, K) and diversity (B,) in float32
    (float64 for float64 inputs); diversity is None when compute_diversity=False."""
    pooled: torch.Tensor
    importance: torch.Tensor
    diversity: Optional[torch.Tensor]


def _run_of(module: str, cpu_module: Optional[str] = None):
    """load(device type) of a backend: `module`'s attention_pool (`cpu_module`'s for CPU
    tensors, where it differs), imported on first use."""
    def load(device_type: str):
        name = cpu_module if device_type == "cpu" and cpu_module else module
        return importlib.import_module(f"{__name__}.{name}").attention_pool
    return load


register_op(OP, {"cuda": ("cuda", "triton", "reference"),
                 "cpu": ("cpu", "reference", "triton", "cuda")}, sizes=("attention maps",))
register_backend(Backend(OP, "reference", None, SUPPORTED_DTYPES, _run_of("reference")))
register_backend(Backend(OP, "cpu", ("cpu",), SUPPORTED_DTYPES, _run_of("compiled"),
                         why_not=_library.cpu_why_not))
# On CPU tensors, the CUDA kernels in the CPU emulation of the CUDA execution model (tests).
register_backend(Backend(OP, "cuda", ("cuda", "cpu"), _triton.DTYPES,
                         _run_of("compiled", cpu_module="emulated"),
                         why_not=_library.cuda_why_not("attention_pool_fwd")))
register_backend(Backend(OP, "triton", ("cuda", "cpu"), _triton.DTYPES, _run_of("triton_kernels"),
                         why_not=_triton.why_not))
# Whoever loads a compiled library first, its attention_pool ops get their fakes and autograd.
_library.on_load("_C", lambda: importlib.import_module(f"{__name__}.compiled"))
_library.on_load("_C_emulated", lambda: importlib.import_module(f"{__name__}.emulated"))


def attention_pool(features: torch.Tensor, attn_logits: torch.Tensor, *, pool: str = "sum",
                   compute_diversity: bool = True, backend: str = "auto") -> AttentionPoolOutput:
    """Recalibrated attention pooling with the weighted diversity loss (docs/attention_pool.md;
    Hörmann et al., "Attention-based Partial Face Recognition", ICIP 2021).

    features: (B, C, H, W) or (B, C, N), any strides (channels_last needs no copy).
    attn_logits: (B, K, H, W) or (B, K, N), the raw attention maps; same dtype and device.
    pool: "sum" (the paper) or "mean" (divided by the number of pixels).
    compute_diversity: False skips the diversity term (inference); diversity is then None.
    backend: "auto" (the fastest that can run the inputs), "cuda", "triton", "cpu" or
        "reference".

    Returns AttentionPoolOutput(pooled (B, K, C), importance (B, K), diversity (B,) or None);
    the loss term of the paper is diversity itself (1 - sum_n max_k s_k p_kn).

    Under torch.autocast it runs in the autocast dtype, like a matmul (it is one): pooled comes
    out in it; importance and diversity stay float32.
    """
    amp = autocast_dtype(features)
    if amp is not None:
        features, attn_logits = cast(features, amp), cast(attn_logits, amp)
    validate_inputs(features, attn_logits, pool, compute_diversity)
    run = implementation(OP, backend, features.device, features.dtype, (attn_logits.shape[1],))
    if amp is None:
        return AttentionPoolOutput(*run(features, attn_logits, pool, compute_diversity))
    with torch.autocast(features.device.type, enabled=False):
        return AttentionPoolOutput(*run(features, attn_logits, pool, compute_diversity))
