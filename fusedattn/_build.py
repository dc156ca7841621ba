"""What the compiled extension was built with (stamped by setup.py) and whether it fits the
running torch and GPU."""

from __future__ import annotations

import json
from pathlib import Path

import torch

_BUILD_INFO_PATH = Path(__file__).with_name("_build_info.json")


def build_info() -> dict:
    """The torch and CUDA versions the extension was built against, its GPU architectures (SASS
    and PTX), compiler, flags and source revision. Empty-ish when the extension was never built."""
    try:
        return json.loads(_BUILD_INFO_PATH.read_text())
    except (OSError, ValueError):
        return {"cuda_built": False, "cuda_reason": "the extension was not built",
                "cuda_archs_sass": [], "cuda_archs_ptx": []}


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("+")[0].split(".")[:2])


def torch_mismatch(info: dict | None = None) -> str | None:
    """A message naming both versions when the running torch cannot load the extension. The
    extension uses torch's stable ABI, so any torch from the build's minimum on loads it (a
    build against 2.14 runs on 2.10 to 2.14 and later); older ones cannot."""
    info = build_info() if info is None else info
    built, minimum = info.get("torch"), info.get("torch_min")
    running = torch.__version__.split("+")[0]
    if built and minimum and _release(running) < _release(minimum):
        return (f"fusedattn's extension was built against torch {built} with its stable ABI, "
                f"which needs torch >= {minimum}, but torch {running} is running; upgrade torch "
                f"or rebuild fusedattn against this torch (`pip install --no-build-isolation .`)")
    return None


ARCH_MISMATCH = "the CUDA kernels were built for"  # how cuda_arch_unsupported's answers begin


def _arch(code: str) -> tuple[int, int]:
    major, minor = code.replace("+PTX", "").split(".")
    return int(major), int(minor.rstrip("af"))


def cuda_arch_unsupported(capability: tuple[int, int], sass: list[str], ptx: list[str]) -> str | None:
    """Why kernels built for these archs cannot run on a GPU of this compute capability, or None.

    A cubin for sm_XY runs on GPUs of the same major version with minor >= Y, except the
    arch-specific sm_XYa/f variants, which run only on XY; PTX for compute_XY is JIT-compiled by
    the driver for any GPU of capability >= XY."""
    for code in sass:
        major, minor = _arch(code)
        specific = code.removesuffix("+PTX")[-1:] in ("a", "f")
        if (major, minor) == tuple(capability) or (
                not specific and major == capability[0] and minor <= capability[1]):
            return None
    if any(_arch(code) <= tuple(capability) for code in ptx):
        return None
    return (f"{ARCH_MISMATCH} {';'.join(sass) or 'no'} SASS and "
            f"{';'.join(ptx) or 'no'} PTX, none of which runs on this GPU "
            f"(sm_{capability[0]}{capability[1]}); rebuild with FUSEDATTN_CUDA_ARCHS="
            f"\"{capability[0]}.{capability[1]}\"")
