"""Validation helpers shared by every op: bad input becomes a ValueError/TypeError that names
the argument and what was seen. Each op's own checks (fusedattn/<op>/validation.py) are made of
these."""

from __future__ import annotations

from typing import Sequence

import torch

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_DTYPE_NAMES = "float16, bfloat16, float32 or float64"


def accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for 16/32-bit inputs, float64 for float64: what every backend accumulates in,
    and the dtype of the ops' small float outputs."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_tensor(name: str, t, layouts: Sequence[str]) -> None:
    """A dense floating tensor of one of the ranks the layouts name, e.g.
    layouts=("(B, C, H, W)", "(B, C, N)"): 4-D or 3-D."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    ranks = [layout.count(",") + 1 for layout in layouts]
    if t.dim() not in ranks:
        options = " or ".join(f"{r}-D {layout}" for r, layout in zip(ranks, layouts))
        raise ValueError(f"{name} must be {options}, got a {t.dim()}-D tensor of shape "
                         f"{tuple(t.shape)}")
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must be {_DTYPE_NAMES}, got {t.dtype}")
    if t.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")


def check_same_dtype(name: str, t: torch.Tensor, other_name: str, other: torch.Tensor) -> None:
    if t.dtype != other.dtype:
        raise TypeError(f"{name} and {other_name} must have the same dtype, got {name} "
                        f"{t.dtype} and {other_name} {other.dtype}")


def check_same_device(name: str, t: torch.Tensor, other_name: str, other: torch.Tensor) -> None:
    if t.device != other.device:
        raise ValueError(f"{name} and {other_name} must be on the same device, got {name} on "
                         f"{t.device} and {other_name} on {other.device}")


def check_choice(name: str, value, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        options = " or ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be {options}, got {value!r}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def prod(dims) -> int:
    out = 1
    for d in dims:
        out *= d
    return out

