"""Helpers of every op's test suite: which backends exist, where each runs, and skipping (never
passing) where one cannot."""

from __future__ import annotations

import os

import pytest
import torch

from fusedattn import backends

ALL_BACKENDS = backends.BACKEND_NAMES
HAS_GPU = torch.cuda.is_available()
TRITON_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
CUDA_EMULATED = os.environ.get("FUSEDATTN_CUDA_EMULATE") == "1" and not HAS_GPU


def device_for(backend: str) -> torch.device:
    """Where a backend's suite runs: the GPU for cuda and triton when there is one, else the
    CPU (Triton then runs in its interpreter, the CUDA kernels in the emulation)."""
    if backend in ("cuda", "triton") and HAS_GPU:
        return torch.device("cuda")
    return torch.device("cpu")


def require_backend(backend: str, dtype: torch.dtype | None = None, sizes: dict | None = None,
                    op: str = "attention_pool") -> torch.device:
    """The device to test `backend` of `op` on; skips (never passes) when it cannot run there."""
    device = device_for(backend)
    why = backends.unavailable_reason(op, backend, device, dtype, sizes)
    if why is not None:
        pytest.skip(f"{backend} backend unavailable: {why}")
    return device
