"""channel_attention: squeeze-and-excitation, the channel attention of SE-ResNets, EfficientNet,
MobileNetV3, RegNet-Y and face backbones such as IR-SE; the math in docs/channel_attention.md.

This folder is the whole op: the public function (here), validation, the reference, the fused
backends' shared fakes and autograd, the compiled (cpu, cuda) and Triton backends, the nn
modules and convert rule, a face backbone built on it, and the op's testing and benchmarking
harnesses.
"""

from __future__ import annotations

import importlib
from typing import Optional

import torch

from ... import _library, _triton
from ..._autocast import autocast_dtype, cast
from ..._validation import SUPPORTED_DTYPES
from ...backends import Backend, implementation, register_backend, register_op
from .validation import validate_inputs

OP = "channel_attention"
# The CUDA MLP kernel keeps 4 samples' squeezed channels and bottleneck in shared memory
# (16 (C + R) bytes); the Triton MLP kernel holds the whole bottleneck in registers.
MAX_CUDA_CHANNELS = 8192
MAX_CUDA_SQUEEZE_CHANNELS = 4096
MAX_TRITON_SQUEEZE_CHANNELS = 512


def _run_of(module: str, cpu_module: Optional[str] = None):
    """load(device type) of a backend: `module`'s channel_attention (`cpu_module`'s for CPU
    tensors, where it differs), imported on first use."""
    def load(device_type: str):
        name = cpu_module if device_type == "cpu" and cpu_module else module
        return importlib.import_module(f"{__name__}.{name}").channel_attention
    return load


register_op(OP, {"cuda": ("cuda", "triton", "reference"),
                 "cpu": ("cpu", "reference", "triton", "cuda")},
            sizes=("channels", "squeeze channels"))
register_backend(Backend(OP, "reference", None, SUPPORTED_DTYPES, _run_of("reference")))
register_backend(Backend(OP, "cpu", ("cpu",), SUPPORTED_DTYPES, _run_of("compiled"),
                         why_not=_library.cpu_why_not))
# On CPU tensors, the CUDA kernels in the CPU emulation of the CUDA execution model (tests).
register_backend(Backend(OP, "cuda", ("cuda", "cpu"), _triton.DTYPES,
                         _run_of("compiled", cpu_module="emulated"),
                         why_not=_library.cuda_why_not("channel_attention_fwd"),
                         limits={"channels": MAX_CUDA_CHANNELS,
                                 "squeeze channels": MAX_CUDA_SQUEEZE_CHANNELS}))
register_backend(Backend(OP, "triton", ("cuda", "cpu"), _triton.DTYPES, _run_of("triton_kernels"),
                         why_not=_triton.why_not,
                         limits={"squeeze channels": MAX_TRITON_SQUEEZE_CHANNELS}))
# Whoever loads a compiled library first, its channel_attention ops get their fakes and autograd.
_library.on_load("_C", lambda: importlib.import_module(f"{__name__}.compiled"))
_library.on_load("_C_emulated", lambda: importlib.import_module(f"{__name__}.emulated"))


def channel_attention(x: torch.Tensor, fc1_weight: torch.Tensor,
                      fc1_bias: Optional[torch.Tensor], fc2_weight: torch.Tensor,
                      fc2_bias: Optional[torch.Tensor], *, activation: str = "relu",
                      gate: str = "sigmoid", backend: str = "auto") -> torch.Tensor:
    """Squeeze-and-excitation (docs/channel_attention.md):

        s = mean over the pixels of x;  g = gate(fc2(act(fc1(s))));  y = x * g per channel

    x: (B, C, H, W) or (B, C, N), any strides (NCHW and channels_last are read in place).
    fc1_weight: (R, C) or (R, C, 1, 1); fc2_weight: (C, R) or (C, R, 1, 1); fc1_bias (R,),
        fc2_bias (C,) or None. All of x's dtype, or float32 for float16/bfloat16 x.
    activation: "relu" or "silu" (inside the bottleneck). gate: "sigmoid" or "hardsigmoid".
    backend: "auto" (the fastest that can run the inputs), "cuda", "triton", "cpu" or
        "reference".

    Returns y, of x's shape, dtype and memory format. The squeeze, the MLP and the gate are
    computed in float32 (float64 for float64 x). Under torch.autocast it runs in the autocast
    dtype, as the convolutions it replaces do (x and the parameters are cast).
    """
    amp = autocast_dtype(x)
    if amp is not None:
        x, fc1_weight, fc2_weight = cast(x, amp), cast(fc1_weight, amp), cast(fc2_weight, amp)
        fc1_bias, fc2_bias = cast(fc1_bias, amp), cast(fc2_bias, amp)
    validate_inputs(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate)
    run = implementation(OP, backend, x.device, x.dtype, (x.shape[1], fc1_weight.shape[0]))
    if amp is None:
        return run(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate)
    with torch.autocast(x.device.type, enabled=False):
        return run(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate)
