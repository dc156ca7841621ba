"""The compiled extension's ops (csrc/): the "cpu" backend (fused C++ kernels) and the "cuda"
backend (hand-written CUDA kernels) share the schemas fusedattn::attention_pool_fwd/_bwd; the
dispatcher picks the kernel by device. Here, from Python as torch.library recommends, they get
fake (meta) kernels and their autograd formula, so torch.compile traces them without breaks."""

from __future__ import annotations

import torch

from ._op_contract import register_attention_pool_op
from ._build import build_info, cuda_arch_unsupported, torch_mismatch

try:
    from . import _C  # noqa: F401  -- loading the library registers torch.ops.fusedattn.*
    LOAD_ERROR: str | None = None
except ImportError as exc:  # not built, or not loadable (another torch, missing libraries)
    _built = any(Path(__file__).parent.glob("_C.*"))
    LOAD_ERROR = torch_mismatch() or (
        f"the compiled extension fusedattn._C could not be loaded ({exc})" if _built else
        f"the compiled extension fusedattn._C is not built ({exc})")

FWD = "fusedattn::attention_pool_fwd"
_CUDA_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
CUDA_MAX_MAPS = 64  # kMaxMaps in csrc/cuda/attention_pool_cuda.h


def cpu_unavailable_reason(device: torch.device, dtype: torch.dtype | None = None,
                           num_maps: int | None = None) -> str | None:
    if LOAD_ERROR:
        return LOAD_ERROR
    if device.type != "cpu":
        return f"the cpu backend runs CPU tensors, got a tensor on {device}"
    return None


def cuda_unavailable_reason(device: torch.device, dtype: torch.dtype | None = None,
                            num_maps: int | None = None) -> str | None:
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
    if num_maps is not None and num_maps > CUDA_MAX_MAPS:
        return f"the cuda backend supports at most {CUDA_MAX_MAPS} attention maps; these have more"
    return cuda_arch_unsupported(torch.cuda.get_device_capability(device),
                                 info.get("cuda_archs_sass", []), info.get("cuda_archs_ptx", []))


def attention_pool(features: torch.Tensor, logits: torch.Tensor, pool: str,
                   compute_diversity: bool):
    pooled, importance, diversity, _ = torch.ops.fusedattn.attention_pool_fwd(
        features, logits, pool, compute_diversity)
    return pooled, importance, diversity if compute_diversity else None


if LOAD_ERROR is None:
    register_attention_pool_op(torch.ops.fusedattn.attention_pool_fwd.default,
                               torch.ops.fusedattn.attention_pool_bwd.default)
