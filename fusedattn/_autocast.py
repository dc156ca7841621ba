"""The autocast policy of every op: under torch.autocast an op runs in the autocast dtype like
the matmul or convolution it replaces. Its floating inputs are cast to that dtype (float64 is
left alone, as autocast does), and the backend then runs with autocast off, so that it
computes (and accumulates in float32) as specified."""

from __future__ import annotations

import torch

_CASTABLE = (torch.float32, torch.float16, torch.bfloat16)
# One C call answers "is autocast on anywhere?" (the common answer, no): the per-call check.
_any_enabled = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)


def autocast_dtype(t):
    """The dtype autocast casts to on tensor t's device type, or None when autocast is off
    there (or t is not a tensor)."""
    if not _any_enabled() or not isinstance(t, torch.Tensor):
        return None
    device_type = t.device.type
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def cast(t, dtype: torch.dtype):
    """`t` in the autocast dtype if it is a castable tensor, else `t` itself."""
    return t.to(dtype) if isinstance(t, torch.Tensor) and t.dtype in _CASTABLE else t
