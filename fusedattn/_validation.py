"""Input validation shared by every backend: one place that turns bad input into a clear
ValueError/TypeError naming the argument and what was seen."""

from __future__ import annotations

import torch

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
POOL_MODES = ("sum", "mean")


def accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for 16/32-bit inputs, float64 for float64 (SPEC.md): the dtype of importance and
    diversity, and what every backend accumulates in."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def _check_tensor(name: str, t, layouts: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() not in (3, 4):
        raise ValueError(f"{name} must be 4-D {layouts[0]} or 3-D {layouts[1]}, "
                         f"got a {t.dim()}-D tensor of shape {_shape(t)}")
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")
    if t.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")


def validate_inputs(features, attn_logits, pool: str = "sum", compute_diversity: bool = True):
    """Checks the public arguments of attention_pool and returns (features (B, C, N),
    attn_logits (B, K, N)): views of the inputs whenever their strides allow (channels_last
    included), so no backend needs a copy of the feature map."""
    _check_tensor("features", features, ("(B, C, H, W)", "(B, C, N)"))
    _check_tensor("attn_logits", attn_logits, ("(B, K, H, W)", "(B, K, N)"))
    if attn_logits.dtype != features.dtype:
        raise TypeError(f"attn_logits and features must have the same dtype, got attn_logits "
                        f"{attn_logits.dtype} and features {features.dtype}")
    if attn_logits.device != features.device:
        raise ValueError(f"attn_logits and features must be on the same device, got attn_logits "
                         f"on {attn_logits.device} and features on {features.device}")
    if attn_logits.shape[0] != features.shape[0]:
        raise ValueError(f"batch size mismatch: features {_shape(features)} has "
                         f"B={features.shape[0]}, attn_logits {_shape(attn_logits)} has "
                         f"B={attn_logits.shape[0]}")
    f_sp, a_sp = tuple(features.shape[2:]), tuple(attn_logits.shape[2:])
    # 4-D and 3-D inputs may be mixed: then only the pixel counts H*W and N have to agree.
    same_spatial = f_sp == a_sp if len(f_sp) == len(a_sp) else _prod(f_sp) == _prod(a_sp)
    if not same_spatial:
        raise ValueError(f"spatial size mismatch: features {_shape(features)} vs attn_logits "
                         f"{_shape(attn_logits)} (the maps must cover the feature map's pixels)")
    if attn_logits.shape[1] == 0:
        raise ValueError(f"attn_logits must hold at least one attention map (K >= 1), got shape "
                         f"{_shape(attn_logits)}")
    if _prod(f_sp) == 0:
        raise ValueError(f"the feature map must have at least one pixel, got features shape "
                         f"{_shape(features)}")
    if not isinstance(pool, str) or pool not in POOL_MODES:
        raise ValueError(f"pool must be 'sum' or 'mean', got {pool!r}")
    if not isinstance(compute_diversity, bool):
        raise TypeError(f"compute_diversity must be a bool, got {type(compute_diversity).__name__}")
    return features.flatten(2), attn_logits.flatten(2)


def _prod(dims) -> int:
    out = 1
    for d in dims:
        out *= d
    return out
