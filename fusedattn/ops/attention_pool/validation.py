"""attention_pool's input validation, shared by every backend (made of fusedattn._validation's
helpers): bad input becomes a ValueError/TypeError naming the argument and what was seen."""

from __future__ import annotations

import torch

from ..._validation import (SUPPORTED_DTYPES, check_bool, check_choice, check_same_device,
                            check_same_dtype, check_tensor, prod)

POOL_MODES = ("sum", "mean")


_DTYPES = frozenset(SUPPORTED_DTYPES)
_STRIDED = torch.strided
_Tensor = torch.Tensor


def validate_inputs(features, attn_logits, pool: str = "sum", compute_diversity: bool = True):
    """Checks the public arguments of attention_pool (features (B, C, H, W) or (B, C, N),
    attn_logits (B, K, H, W) or (B, K, N)); each backend reads them in place, as views.

    The common case (plain tensors of one rank) is accepted after a few attribute reads, since
    this runs on every call (no torch.Size slicing: that alone costs more than the rest);
    anything else goes through the checks that name the argument and what was seen."""
    if (type(features) is _Tensor and type(attn_logits) is _Tensor
            and (pool == "sum" or pool == "mean") and type(compute_diversity) is bool):
        f_shape, a_shape, dtype = features.shape, attn_logits.shape, features.dtype
        dim = len(f_shape)
        if (dtype in _DTYPES and attn_logits.dtype is dtype and len(a_shape) == dim
                and f_shape[0] == a_shape[0] and a_shape[1] and f_shape[2] == a_shape[2]
                and f_shape[2] and (dim == 3 or (dim == 4 and f_shape[3] == a_shape[3]
                                                 and f_shape[3]))
                and features.layout is _STRIDED and attn_logits.layout is _STRIDED
                and features.device == attn_logits.device):
            return
    _validate_slowly(features, attn_logits, pool, compute_diversity)


def _validate_slowly(features, attn_logits, pool, compute_diversity):
    check_tensor("features", features, ("(B, C, H, W)", "(B, C, N)"))
    check_tensor("attn_logits", attn_logits, ("(B, K, H, W)", "(B, K, N)"))
    check_same_dtype("attn_logits", attn_logits, "features", features)
    check_same_device("attn_logits", attn_logits, "features", features)
    f_shape, a_shape = features.shape, attn_logits.shape
    if a_shape[0] != f_shape[0]:
        raise ValueError(f"batch size mismatch: features {tuple(f_shape)} has B={f_shape[0]}, "
                         f"attn_logits {tuple(a_shape)} has B={a_shape[0]}")
    f_sp, a_sp = tuple(f_shape[2:]), tuple(a_shape[2:])
    # 4-D and 3-D inputs may be mixed: then only the pixel counts H*W and N have to agree.
    if (f_sp != a_sp) if len(f_sp) == len(a_sp) else prod(f_sp) != prod(a_sp):
        raise ValueError(f"spatial size mismatch: features {tuple(f_shape)} vs attn_logits "
                         f"{tuple(a_shape)} (the maps must cover the feature map's pixels)")
    if a_shape[1] == 0:
        raise ValueError(f"attn_logits must hold at least one attention map (K >= 1), got shape "
                         f"{tuple(a_shape)}")
    if prod(f_sp) == 0:
        raise ValueError(f"the feature map must have at least one pixel, got features shape "
                         f"{tuple(f_shape)}")
    check_choice("pool", pool, POOL_MODES)
    check_bool("compute_diversity", compute_diversity)
