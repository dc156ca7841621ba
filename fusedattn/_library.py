"""The compiled extension, fusedattn._C (csrc/): loading it, what it was built with (stamped by
setup.py), and whether it fits the running torch and GPU. Op-neutral: every op's "cpu" and
"cuda" backends are ops of this one library, and their `why_not` checks are made here."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Callable, Optional

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


_LOADED: dict = {}
_ON_LOAD: dict = {}


def on_load(module: str, callback: Callable[[], None]) -> None:
    """Runs `callback` once fusedattn.<module> has loaded (at once if it has): how each op
    registers the fakes and autograd of its compiled ops, whoever loads the library first."""
    _ON_LOAD.setdefault(module, []).append(callback)
    if _LOADED.get(module, "not loaded") is None:
        callback()


def _load(module: str) -> Optional[str]:
    """Imports fusedattn.<module> once (which registers its ops with torch.library) and runs
    its on_load callbacks; returns None, or why it could not be loaded."""
    if module not in _LOADED:
        try:
            importlib.import_module(f"fusedattn.{module}")
            _LOADED[module] = None
            for callback in _ON_LOAD.get(module, []):
                callback()
        except ImportError as exc:  # not built, or not loadable (another torch, a missing library)
            built = any(Path(__file__).parent.glob(f"{module}.*"))
            _LOADED[module] = torch_mismatch() or (
                f"the compiled extension fusedattn.{module} could not be loaded ({exc})" if built
                else f"the compiled extension fusedattn.{module} is not built ({exc})")
    return _LOADED[module]


def load_error() -> Optional[str]:
    """None once fusedattn._C is loaded (its ops registered), else why it cannot be."""
    return _load("_C")


def cpu_why_not(device: torch.device) -> Optional[str]:
    """The `why_not` of every op's "cpu" backend (fused C++ kernels in fusedattn._C)."""
    return load_error()


# Set to 1, every op's "cuda" backend also runs CPU tensors: its CUDA kernels and host code,
# built against the CPU emulation of the CUDA execution model (fusedattn._C_emulated), as
# TRITON_INTERPRET=1 runs Triton kernels on CPU tensors. For tests.
EMULATE_VARIABLE = "FUSEDATTN_CUDA_EMULATE"


def emulating() -> bool:
    return os.environ.get(EMULATE_VARIABLE) == "1"


def cuda_why_not(op_name: str) -> Callable[[torch.device], Optional[str]]:
    """The `why_not` of an op's "cuda" backend: on a GPU, fusedattn._C built with CUDA kernels
    for the op and for that GPU's architecture; on the CPU, the emulation (EMULATE_VARIABLE and
    fusedattn._C_emulated)."""

    def why_not(device: torch.device) -> Optional[str]:
        if device.type == "cpu":
            if not emulating():
                return (f"the cuda backend runs CUDA tensors; CPU tensors only in its emulation "
                        f"of the CUDA execution model ({EMULATE_VARIABLE}=1, for tests)")
            return _load("_C_emulated") or (
                None if torch._C._dispatch_has_kernel_for_dispatch_key(
                    f"fusedattn_emulated::{op_name}", "CPU")
                else f"fusedattn._C_emulated has no {op_name}")
        why = load_error()
        if why is not None:
            return why
        info = build_info()
        if not info.get("cuda_built") or not torch._C._dispatch_has_kernel_for_dispatch_key(
                f"fusedattn::{op_name}", "CUDA"):
            return f"the extension was built without CUDA kernels ({info.get('cuda_reason')})"
        if not torch.cuda.is_available():
            return "no CUDA GPU is available"
        return cuda_arch_unsupported(torch.cuda.get_device_capability(device),
                                     info.get("cuda_archs_sass", []),
                                     info.get("cuda_archs_ptx", []))

    return why_not


def emulation_error() -> Optional[str]:
    """None once fusedattn._C_emulated is loaded, else why it cannot be (it is built only with
    FUSEDATTN_BUILD_EMULATION=1)."""
    why = _load("_C_emulated")
    return why and f"{why} (build it with FUSEDATTN_BUILD_EMULATION=1)"
