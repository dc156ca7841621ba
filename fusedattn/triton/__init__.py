"""The Triton backend: fused kernels in fused_attention_pool.py, registered as torch.library ops
(fusedattn::triton_attention_pool_fwd / _bwd) with autograd, so torch.compile traces them."""

import os

import torch

NAME = "triton"
_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_MAPS = 64  # the tile sizes are checked (compiled, no spills) for K padded up to 64


def unavailable_reason(device: torch.device, dtype=None, num_maps=None):
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        return f"triton is not installed ({exc})"
    if dtype is not None and dtype not in _DTYPES:
        return f"the triton backend supports float16, bfloat16 and float32, got {dtype}"
    if num_maps is not None and num_maps > MAX_MAPS:
        return f"the triton backend supports at most {MAX_MAPS} attention maps; these have more"
    if device.type == "cpu":
        if os.environ.get("TRITON_INTERPRET") != "1":
            return ("Triton runs CUDA tensors; CPU tensors only in its interpreter "
                    "(TRITON_INTERPRET=1, for tests)")
        return None
    if device.type != "cuda":
        return f"the triton backend runs CUDA tensors, got a tensor on {device}"
    if not torch.cuda.is_available():
        return "no CUDA GPU is available"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        return f"the triton backend needs an sm_80+ GPU (bf16 tensor cores), got sm_{major}{minor}"
    return None


def attention_pool(features, logits, pool, compute_diversity):
    from .fused_attention_pool import attention_pool as run

    return run(features, logits, pool, compute_diversity)
