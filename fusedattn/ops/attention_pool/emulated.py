"""The "cuda" backend of attention_pool on CPU tensors: the CUDA kernels and their host code
built against the CPU emulation of the CUDA execution model (csrc/common/emulation), as
torch.ops.fusedattn_emulated.attention_pool_*, when FUSEDATTN_CUDA_EMULATE=1 (for tests: the
whole suite runs the CUDA code without a GPU). Importing this module loads
fusedattn._C_emulated (ImportError saying why where it cannot)."""

import torch

from ... import _library
from . import autograd

if _library.emulation_error() is not None:
    raise ImportError(_library.emulation_error())

_ops = torch.ops.fusedattn_emulated
# (features, logits, pool, compute_diversity) -> (pooled, importance, diversity or None)
attention_pool = autograd.register(_ops.attention_pool_fwd.default, _ops.attention_pool_bwd.default,
                                   _ops.attention_pool_infer.default)
