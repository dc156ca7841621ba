"""attention_pool's part of `python -m fusedattn tune` (fusedattn/tuning.py): the Triton
backend's candidate tiles, warps and pipeline depths, timed on a forward+backward step. (The
CUDA kernels' tiles are compiled in and their grids planned from the device's SM count:
csrc/attention_pool/cuda/plan.h; the tuner times them for the record only.)"""

from __future__ import annotations

import contextlib

from . import benchmarks

# Each a partial override of triton_kernels.launch_config: the few variants worth having
# (wider pixel tiles for long rows, more channels per program, deeper or shallower pipelines,
# 8 warps for the big tiles).
CANDIDATES = {
    "triton": [
        dict(BN=32, stages=3),
        dict(BN=128, num_warps=8),
        dict(BC=128, num_warps=8),
        dict(BC=32, BN=64, stages=5),
        dict(stages=2),
        dict(num_warps=8),
    ],
}


def shape_class(shape) -> str:
    from .triton_kernels import shape_class as of_sizes
    return of_sizes(shape.B, shape.C, shape.K, shape.N)


@contextlib.contextmanager
def apply(backend: str, config: dict):
    from . import triton_kernels
    previous = triton_kernels._forced
    triton_kernels._forced = dict(config)
    try:
        yield
    finally:
        triton_kernels._forced = previous


def make_call(backend: str, shape, dtype, device):
    return benchmarks.make_case(backend, shape, dtype, device, "forward+backward")
