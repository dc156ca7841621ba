"""The compiled extension's ops (csrc/): the "cpu" backend (fused C++ kernels) and the "cuda"
backend (hand-written CUDA kernels) share the schemas fusedattn::attention_pool_fwd/_bwd; the
dispatcher picks the kernel by device. Here, from Python as torch.library recommends, they get
fake (meta) kernels and their autograd formula, so torch.compile traces them without breaks."""

from __future__ import annotations

import torch

from ._build import build_info, cuda_arch_unsupported, torch_mismatch
from ._validation import accumulate_dtype

try:
    from . import _C  # noqa: F401  -- loading the library registers torch.ops.fusedattn.*
    LOAD_ERROR: str | None = None
except ImportError as exc:  # not built, or built against another torch (undefined symbols)
    LOAD_ERROR = torch_mismatch() or f"the compiled extension fusedattn._C is not built ({exc})"

FWD = "fusedattn::attention_pool_fwd"
BWD = "fusedattn::attention_pool_bwd"
_CUDA_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def cpu_unavailable_reason(device: torch.device, dtype: torch.dtype | None = None) -> str | None:
    if LOAD_ERROR:
        return LOAD_ERROR
    if device.type != "cpu":
        return f"the cpu backend runs CPU tensors, got a tensor on {device}"
    return None


def cuda_unavailable_reason(device: torch.device, dtype: torch.dtype | None = None) -> str | None:
    if LOAD_ERROR:
        return LOAD_ERROR
    info = build_info()
    if not info.get("cuda_built") or not torch._C._dispatch_has_kernel_for_dispatch_key(FWD, "CUDA"):
        return f"the extension was built without CUDA kernels ({info.get('cuda_reason')})"
    if device.type != "cuda":
        return f"the cuda backend runs CUDA tensors, got a tensor on {device}"
    if not torch.cuda.is_available():
        return "no CUDA GPU is available"
    if dtype is not None and dtype not in _CUDA_DTYPES:
        return f"the cuda backend supports float16, bfloat16 and float32, got {dtype}"
    return cuda_arch_unsupported(torch.cuda.get_device_capability(device),
                                 info.get("cuda_archs_sass", []), info.get("cuda_archs_ptx", []))


def attention_pool(features: torch.Tensor, logits: torch.Tensor, pool: str,
                   compute_diversity: bool):
    pooled, importance, diversity, _ = torch.ops.fusedattn.attention_pool_fwd(
        features, logits, pool, compute_diversity)
    return pooled, importance, diversity if compute_diversity else None


def _fwd_fake(features, logits, pool, compute_diversity):
    B, C, _ = features.shape
    K = logits.shape[1]
    acc = accumulate_dtype(features.dtype)
    return (features.new_empty((B, K, C)), features.new_empty((B, K), dtype=acc),
            features.new_empty((B if compute_diversity else 0,), dtype=acc),
            features.new_empty((B, K), dtype=acc))


def _bwd_fake(grad_pooled, grad_importance, grad_diversity, features, logits, importance,
              logsumexp, pool):
    return torch.empty_like(features), torch.empty_like(logits)


def _setup_context(ctx, inputs, output):
    features, logits, pool, compute_diversity = inputs
    _, importance, _, logsumexp = output
    ctx.save_for_backward(features, logits, importance, logsumexp)
    ctx.pool = pool
    ctx.compute_diversity = compute_diversity


def _backward(ctx, grad_pooled, grad_importance, grad_diversity, _grad_logsumexp):
    features, logits, importance, logsumexp = ctx.saved_tensors
    if grad_pooled is None:
        grad_pooled = features.new_zeros((features.shape[0], logits.shape[1], features.shape[1]))
    if grad_importance is None:
        grad_importance = torch.zeros_like(importance)
    if not ctx.compute_diversity:
        grad_diversity = None
    grad_features, grad_logits = torch.ops.fusedattn.attention_pool_bwd(
        grad_pooled, grad_importance, grad_diversity, features, logits, importance, logsumexp,
        ctx.pool)
    return (grad_features if ctx.needs_input_grad[0] else None,
            grad_logits if ctx.needs_input_grad[1] else None, None, None)


if LOAD_ERROR is None:
    torch.library.register_fake(FWD)(_fwd_fake)
    torch.library.register_fake(BWD)(_bwd_fake)
    torch.library.register_autograd(FWD, _backward, setup_context=_setup_context)
