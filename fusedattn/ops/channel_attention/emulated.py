"""The "cuda" backend of channel_attention on CPU tensors: the CUDA kernels and their host code
built against the CPU emulation of the CUDA execution model (csrc/common/emulation), as
torch.ops.fusedattn_emulated.channel_attention_*, when FUSEDATTN_CUDA_EMULATE=1 (for tests: the
whole suite runs the CUDA code without a GPU). Importing this module loads
fusedattn._C_emulated (ImportError saying why where it cannot)."""

import torch

from ... import _library
from . import autograd

if _library.emulation_error() is not None:
    raise ImportError(_library.emulation_error())

_ops = torch.ops.fusedattn_emulated
# (x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate) -> y
channel_attention = autograd.register(_ops.channel_attention_fwd.default,
                                      _ops.channel_attention_bwd.default,
                                      _ops.channel_attention_infer.default)
