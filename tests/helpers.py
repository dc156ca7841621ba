"""Test-suite helpers on top of fusedattn.testing: which backends exist, where each runs, and
skipping (never passing) where one cannot."""

from __future__ import annotations

import os

import pytest
import torch

import fusedattn
from fusedattn.testing import (LAYOUTS, check_against_reference,  # noqa: F401 -- re-exported
                               make_inputs, run)

ALL_BACKENDS = fusedattn.BACKENDS
HAS_GPU = torch.cuda.is_available()
TRITON_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def device_for(backend: str) -> torch.device:
    """Where a backend's suite runs: GPUs for cuda (and triton when there is a GPU), the CPU
    otherwise (Triton then runs in its interpreter)."""
    if backend == "cuda" or (backend == "triton" and HAS_GPU):
        return torch.device("cuda")
    return torch.device("cpu")


def require_backend(backend: str, dtype: torch.dtype | None = None,
                    num_maps: int | None = None) -> torch.device:
    """The device to test `backend` on; skips (never passes) when it cannot run there."""
    device = device_for(backend)
    why = fusedattn.backend_status(device).get(backend, f"{backend} does not run on {device}")
    if why is None and (dtype is not None or num_maps is not None):
        why = fusedattn._dispatch._unavailable_reason(backend, device, dtype, num_maps)
    if why is not None:
        pytest.skip(f"{backend} backend unavailable: {why}")
    return device
