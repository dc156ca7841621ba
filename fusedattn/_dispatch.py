"""The public entry point and the one dispatcher that picks a backend for it."""

from __future__ import annotations

import importlib
import warnings
from typing import Callable, NamedTuple, Optional

import torch

from ._build import ARCH_MISMATCH
from ._validation import validate_inputs


class AttentionPoolOutput(NamedTuple):
    """pooled (B, K, C) in the features' dtype; importance (B, K) and diversity (B,) in float32
    (float64 for float64 inputs); diversity is None when compute_diversity=False."""
    pooled: torch.Tensor
    importance: torch.Tensor
    diversity: Optional[torch.Tensor]


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run these inputs (not built, no GPU, wrong
    device or dtype); the message says which."""


class _Backend(NamedTuple):
    module: str                 # the module implementing it, imported on first use
    reason: str                 # its function returning why it cannot run, or None
    run: str = "attention_pool"


_BACKENDS = {
    "cuda": _Backend("fusedattn._extension", "cuda_unavailable_reason"),
    "triton": _Backend("fusedattn.triton", "unavailable_reason"),
    "cpu": _Backend("fusedattn._extension", "cpu_unavailable_reason"),
    "reference": _Backend("fusedattn.reference", "unavailable_reason"),
}
# Fastest first, per device type. On CPU tensors Triton runs only in its (slow) interpreter.
_ORDER = {"cuda": ("cuda", "triton", "reference"), "cpu": ("cpu", "reference", "triton")}
BACKENDS = tuple(_BACKENDS)


def _function(name: str, attr: str) -> Callable:
    spec = _BACKENDS[name]
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        if attr != spec.reason:
            raise
        why = f"{spec.module} cannot be imported ({exc})"
        return lambda device, dtype=None, num_maps=None: why
    return getattr(module, attr)


def _unavailable_reason(name: str, device: torch.device, dtype=None,
                        num_maps: Optional[int] = None) -> Optional[str]:
    if device.type not in _ORDER:
        return f"no backend supports {device.type} tensors except 'reference'" \
            if name != "reference" else None
    return _function(name, _BACKENDS[name].reason)(device, dtype, num_maps)


def backend_status(device="cpu") -> dict:
    """{backend: None if it can run tensors on `device`, else why not}, fastest first."""
    device = torch.device(device)
    order = _ORDER.get(device.type, ("reference",))
    return {name: _unavailable_reason(name, device) for name in order}


def available_backends(device="cpu") -> list:
    """The backends that can run tensors on `device`, fastest first: a subset of
    ["cuda", "triton", "cpu", "reference"]."""
    return [name for name, why in backend_status(device).items() if why is None]


_WARNED_DEVICES: set = set()


def _warn_if_gpu_not_covered(name: str, device: torch.device, why: str) -> None:
    """The compiled CUDA kernels exist but not for this GPU's architecture: "auto" falls back
    (to Triton where it can run), which is worth saying once, not silently."""
    if name == "cuda" and why.startswith(ARCH_MISMATCH) and str(device) not in _WARNED_DEVICES:
        _WARNED_DEVICES.add(str(device))
        warnings.warn(f"fusedattn: the cuda backend cannot run on {device}: {why}. "
                      "backend='auto' uses the next available backend.", RuntimeWarning,
                      stacklevel=4)


# Implementations already selected once: a plain dict that torch.compile reads without tracing
# the imports and device queries of the selection itself.
_RUNNERS: dict = {}


_SELECTED: dict = {}  # (backend, device, dtype, K) -> the backend that runs them


@torch.compiler.assume_constant_result
def _select(backend: str, device: torch.device, dtype: torch.dtype, num_maps: int) -> str:
    """The backend that runs (device, dtype, K maps) inputs; its implementation is put in
    _RUNNERS. Decided once per kind of input: the checks (build info, device capability) stay
    off the per-call path."""
    key = (backend, str(device), dtype, num_maps)
    if key not in _SELECTED:
        _SELECTED[key] = _select_uncached(backend, device, dtype, num_maps)
    return _SELECTED[key]


def _select_uncached(backend: str, device: torch.device, dtype: torch.dtype,
                     num_maps: int) -> str:
    if backend == "auto":
        name = "reference"
        for candidate in _ORDER.get(device.type, ("reference",)):
            why = _unavailable_reason(candidate, device, dtype, num_maps)
            if why is None:
                name = candidate
                break
            _warn_if_gpu_not_covered(candidate, device, why)
    elif backend not in _BACKENDS:
        raise ValueError(f"backend must be 'auto' or one of {list(_BACKENDS)}, got {backend!r}")
    else:
        why = _unavailable_reason(backend, device, dtype, num_maps)
        if why is not None:
            raise BackendUnavailableError(
                f"fusedattn backend {backend!r} cannot run these inputs: {why}")
        name = backend
    if name not in _RUNNERS:
        _RUNNERS[name] = _function(name, _BACKENDS[name].run)
    return name


_AUTOCAST_FROM = (torch.float32, torch.float16, torch.bfloat16)
MAX_FUSED_MAPS = 64  # the most maps the CUDA and Triton kernels' tiles hold


def _autocast(features, attn_logits):
    """Under torch.autocast the op runs in the autocast dtype, like a matmul (it is one): both
    inputs are cast to it, so pooled comes out in it; importance and diversity stay float32.
    float64 inputs are left alone, as autocast does. Returns the inputs and whether autocast was
    on (the backend then runs with it off, so that it computes as specified)."""
    if not (isinstance(features, torch.Tensor) and isinstance(attn_logits, torch.Tensor)):
        return features, attn_logits, False
    device_type = features.device.type
    if not (torch.amp.is_autocast_available(device_type)
            and torch.is_autocast_enabled(device_type)):
        return features, attn_logits, False
    dtype = torch.get_autocast_dtype(device_type)
    cast = lambda t: t.to(dtype) if t.dtype in _AUTOCAST_FROM else t  # noqa: E731
    return cast(features), cast(attn_logits), True


def attention_pool(features: torch.Tensor, attn_logits: torch.Tensor, *, pool: str = "sum",
                   compute_diversity: bool = True, backend: str = "auto") -> AttentionPoolOutput:
    """Recalibrated attention pooling with the weighted diversity loss (SPEC.md; Hörmann et al.,
    "Attention-based Partial Face Recognition", ICIP 2021).

    features: (B, C, H, W) or (B, C, N), any strides (channels_last needs no copy).
    attn_logits: (B, K, H, W) or (B, K, N), the raw attention maps; same dtype and device.
    pool: "sum" (the paper) or "mean" (divided by the number of pixels).
    compute_diversity: False skips the diversity term (inference); diversity is then None.
    backend: "auto" (the fastest that can run the inputs), "cuda", "triton", "cpu" or
        "reference".

    Returns AttentionPoolOutput(pooled (B, K, C), importance (B, K), diversity (B,) or None);
    the loss term of the paper is diversity itself (1 - sum_n max_k s_k p_kn).
    """
    features, attn_logits, autocast_on = _autocast(features, attn_logits)
    f3, a3 = validate_inputs(features, attn_logits, pool, compute_diversity)
    # K enters the (constant) selection only as whether the fused kernels' tiles hold it: a
    # branch on a size, which torch.compile turns into a guard even for dynamic shapes.
    num_maps = MAX_FUSED_MAPS if a3.shape[1] <= MAX_FUSED_MAPS else MAX_FUSED_MAPS + 1
    run = _RUNNERS[_select(backend, f3.device, f3.dtype, num_maps)]
    if autocast_on:
        with torch.autocast(f3.device.type, enabled=False):
            pooled, importance, diversity = run(f3, a3, pool, compute_diversity)
    else:
        pooled, importance, diversity = run(f3, a3, pool, compute_diversity)
    return AttentionPoolOutput(pooled, importance, diversity)
