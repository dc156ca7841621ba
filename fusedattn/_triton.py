"""What every op's Triton backend shares: whether Triton can run here (a GPU of sm_80 or newer,
or CPU tensors in Triton's interpreter), the device context of a launch, and the SM count."""

from __future__ import annotations

import contextlib
import dataclasses
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


@dataclasses.dataclass
class Launch:
    """One Triton kernel launch of a call, described before it runs: the launcher runs it, and
    the static SASS report (python -m fusedattn sass-report) compiles exactly this
    specialization for sm_90 and models it. bytes: the DRAM bytes it moves (each buffer once);
    in_flight_bytes: what one program keeps in flight in its main loop; steps: that loop's
    iterations per program; rounds: the round trips to memory a program waits for one after
    another (the small per-sample kernels' latency; 0 for the pipelined streaming kernels);
    serial_rounds: round trips the launch waits for once, which no program's streaming hides
    (every program's wait for its inputs before its first feature load);
    streams_features: it reads or writes the op's big tensors."""
    name: str
    kernel: object
    grid: tuple
    args: tuple
    kwargs: dict
    bytes: int = 0
    in_flight_bytes: int = 0
    steps: int = 1
    rounds: int = 0
    serial_rounds: int = 0
    streams_features: bool = False
    variant: str = ""

    def __call__(self):
        self.kernel[self.grid](*self.args, **self.kwargs)


def run(launches) -> None:
    for launch in launches:
        if launch.grid[0] > 0:
            launch()
