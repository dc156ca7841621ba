"""The backend registry: every op's implementations as typed `Backend` objects, and the one
selection every op's public function uses.

An op (a folder of the package, e.g. fusedattn/attention_pool/) registers itself with
`register_op` (its backends in order of preference per device type) and each backend with
`register_backend`. The public function then calls `implementation(...)` on every call: a dict
lookup once a kind of input (op, requested backend, device, dtype, shape class) has been seen.
"""

from __future__ import annotations

import dataclasses
import warnings
from types import MappingProxyType
from typing import Callable, Mapping, Optional, Sequence

import torch

from ._library import ARCH_MISMATCH

BACKEND_NAMES = ("cuda", "triton", "cpu", "reference")


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run these inputs (not built, no GPU, wrong
    device or dtype, too large a size); the message says which."""


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _always_available(device: torch.device) -> Optional[str]:
    return None


@dataclasses.dataclass(frozen=True)
class Backend:
    """One implementation of one op.

    devices: the device types it runs tensors of (None: any).
    dtypes: the input dtypes it takes.
    load: load(device type) imports the implementation for tensors of that device type (on
        first use only) and returns its run function, which takes the op's validated inputs.
    why_not: why it cannot run tensors on this device now (not built, no GPU, wrong GPU arch,
        interpreter off), or None.
    limits: the largest value of each named size its kernels take, e.g. {"attention maps": 64};
        the op's public function passes the sizes of each call.
    """
    op: str
    name: str
    devices: Optional[tuple[str, ...]]
    dtypes: tuple[torch.dtype, ...]
    load: Callable[[str], Callable]
    why_not: Callable[[torch.device], Optional[str]] = _always_available
    limits: Mapping[str, int] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    def unavailable_reason(self, device: torch.device, dtype: Optional[torch.dtype] = None,
                           sizes: Optional[Mapping[str, int]] = None) -> Optional[str]:
        """Why this backend cannot run inputs on `device` (of `dtype` and `sizes`), or None."""
        if self.devices is not None and device.type not in self.devices:
            return (f"the {self.name} backend runs {' and '.join(self.devices)} tensors, got a "
                    f"tensor on {device}")
        why = self.why_not(device)
        if why is not None:
            return why
        if dtype is not None and dtype not in self.dtypes:
            names = ", ".join(_dtype_name(d) for d in self.dtypes)
            return f"the {self.name} backend supports {names}, got {_dtype_name(dtype)}"
        for what, limit in self.limits.items():
            if sizes is not None and sizes.get(what, 0) > limit:
                return (f"the {self.name} backend supports at most {limit} {what}; these have "
                        f"{sizes[what]}")
        return None


@dataclasses.dataclass
class _Op:
    name: str
    preference: Mapping[str, tuple[str, ...]]  # device type -> backend names, fastest first
    sizes: tuple[str, ...] = ()  # the names of the sizes a call passes, in order
    backends: dict = dataclasses.field(default_factory=dict)
    limits: tuple = ()  # every (size index, limit) of its backends: what a shape class is made of

    def order(self, device: torch.device) -> tuple[str, ...]:
        return self.preference.get(device.type, ("reference",))


_OPS: dict[str, _Op] = {}


def register_op(name: str, preference: Mapping[str, Sequence[str]],
                sizes: Sequence[str] = ()) -> None:
    """An op, its backends' order of preference per device type (fastest first; devices not
    named run the reference backend), and the names of the sizes each call passes to
    `implementation` (those some backend's limits name)."""
    _OPS[name] = _Op(name, {device: tuple(order) for device, order in preference.items()},
                     tuple(sizes))


def register_backend(backend: Backend) -> None:
    op = _OPS[backend.op]
    unknown = set(backend.limits) - set(op.sizes)
    if unknown:
        raise ValueError(f"{backend.op}'s {backend.name} backend limits sizes the op does not "
                         f"pass: {sorted(unknown)} (register_op's sizes: {op.sizes})")
    op.backends[backend.name] = backend
    op.limits = tuple(sorted({(op.sizes.index(what), limit) for b in op.backends.values()
                              for what, limit in b.limits.items()}))


def backends(op: str) -> dict:
    """{name: Backend} of an op."""
    return dict(_OPS[op].backends)


def ops() -> tuple[str, ...]:
    return tuple(_OPS)


def unavailable_reason(op: str, backend: str, device, dtype: Optional[torch.dtype] = None,
                       sizes: Optional[Mapping[str, int]] = None) -> Optional[str]:
    """Why `backend` cannot run `op` on inputs of this device (and dtype and sizes), or None."""
    device = torch.device(device)
    spec = _OPS[op]
    if backend not in spec.order(device):
        return f"no {backend} backend of {op} runs {device.type} tensors"
    return spec.backends[backend].unavailable_reason(device, dtype, sizes)


def backend_status(device="cpu", op: str = "attention_pool") -> dict:
    """{backend: None if it can run the op's tensors on `device`, else why not}, fastest
    first."""
    device = torch.device(device)
    return {name: unavailable_reason(op, name, device) for name in _OPS[op].order(device)}


def available_backends(device="cpu", op: str = "attention_pool") -> list:
    """The backends that can run the op's tensors on `device`, fastest first: a subset of
    ["cuda", "triton", "cpu", "reference"]."""
    return [name for name, why in backend_status(device, op).items() if why is None]


def shape_class(op: str, sizes: tuple) -> int:
    """What of a call's sizes (in the order register_op named them) the choice of backend
    depends on: bit i is set when the size of the op's i-th limit exceeds it (0 for ops without
    limits, and for calls within them all). An int made by branching, so that under
    torch.compile each comparison becomes a guard and the class a constant, even for dynamic
    shapes."""
    cls = 0
    for i, (index, limit) in enumerate(_OPS[op].limits):
        if sizes[index] > limit:
            cls |= 1 << i
    return cls


_WARNED: set = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=5)


# (op, requested backend, device, dtype, shape class) -> the chosen backend's name, and
# (op, backend name) -> its run function: after the first call of a kind of input, choosing is
# two dict lookups.
_CHOSEN: dict = {}
_RUN: dict = {}
_RUN_FOR: dict = {}  # the two combined, for eager calls


def choose(op: str, backend: str, device: torch.device, dtype: torch.dtype,
           size_class: int) -> str:
    """The name of the backend that runs the op on (device, dtype) inputs of a shape class
    (`shape_class`: which of the op's limits their sizes exceed). Decided once per kind of input,
    so the checks (build info, device capability) stay off the per-call path; torch.compile
    takes the result as a constant (the `_dynamo_marked_constant` attribute below is what
    torch.compiler.assume_constant_result sets, without importing torch._dynamo here)."""
    key = (op, backend, device, dtype, size_class)
    name = _CHOSEN.get(key)
    if name is None:
        name = _CHOSEN[key] = _choose_uncached(op, backend, device, dtype, size_class)
    return name


choose._dynamo_marked_constant = True  # type: ignore[attr-defined]


def run_function(op: str, name: str, device_type: str) -> Callable:
    """The run function of a chosen backend for tensors of a device type (imported on first
    use)."""
    run = _RUN.get((op, name, device_type))
    if run is None:
        run = _RUN[(op, name, device_type)] = _OPS[op].backends[name].load(device_type)
    return run


def _choose_uncached(op: str, backend: str, device: torch.device, dtype: torch.dtype,
                     size_class: int) -> str:
    spec = _OPS[op]
    # Sizes that stand for the shape class: one more than the largest limit exceeded, else 0
    # (within every limit; several backends may limit the same size differently).
    sizes = {}
    for i, (index, limit) in enumerate(spec.limits):
        what = spec.sizes[index]
        sizes[what] = max(sizes.get(what, 0), limit + 1 if size_class >> i & 1 else 0)
    if backend == "auto":
        for candidate in spec.order(device):
            why = spec.backends[candidate].unavailable_reason(device, dtype, sizes)
            if why is None:
                return candidate
            if candidate == "cuda" and device.type == "cuda" and why.startswith(ARCH_MISMATCH):
                # The CUDA kernels exist, but not for this GPU: worth saying once, not silently.
                _warn_once(f"fusedattn: the cuda backend cannot run on {device}: {why}. "
                           "backend='auto' uses the next available backend.")
        return "reference"
    if backend not in BACKEND_NAMES:
        raise ValueError(f"backend must be 'auto' or one of {list(BACKEND_NAMES)}, got "
                         f"{backend!r}")
    why = unavailable_reason(op, backend, device, dtype, sizes)
    if why is not None:
        raise BackendUnavailableError(
            f"fusedattn backend {backend!r} cannot run these inputs: {why}")
    return backend


def implementation(op: str, backend: str, device: torch.device, dtype: torch.dtype,
                   sizes: tuple = ()) -> Callable:
    """The run function for one call, whose sizes are given in the order register_op named
    them: `choose` and `run_function`, behind one dict lookup in eager mode (this runs on every
    call of every op; the few sizes that limits name take part in the key as they are); under
    torch.compile, the constant `choose` of the shape class."""
    if torch.compiler.is_compiling():
        return run_function(op, choose(op, backend, device, dtype, shape_class(op, sizes)),
                            device.type)
    key = (op, backend, device, dtype, sizes)
    run = _RUN_FOR.get(key)
    if run is None:
        name = choose(op, backend, device, dtype, shape_class(op, sizes))
        run = _RUN_FOR[key] = run_function(op, name, device.type)
    return run
