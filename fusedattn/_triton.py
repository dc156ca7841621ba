"""What every op's Triton backend shares: whether Triton can run here (a GPU of sm_80 or newer,
or CPU tensors in Triton's interpreter), the device context of a launch, and the SM count."""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Optional

import torch

DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def interpreted() -> bool:
    """Triton's interpreter runs the kernels (on CPU tensors, in numpy): TRITON_INTERPRET=1."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def why_not(device: torch.device) -> Optional[str]:
    """The `why_not` of every op's "triton" backend."""
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        return f"triton is not installed ({exc})"
    if device.type == "cpu":
        if not interpreted():
            return ("Triton runs CUDA tensors; CPU tensors only in its interpreter "
                    "(TRITON_INTERPRET=1, for tests)")
        return None
    if not torch.cuda.is_available():
        return "no CUDA GPU is available"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        return f"the triton backend needs an sm_80+ GPU (bf16 tensor cores), got sm_{major}{minor}"
    return None


def on_device(t: torch.Tensor):
    """Triton launches on the current CUDA device: make it the tensor's."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


@functools.lru_cache(maxsize=None)
def sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count
