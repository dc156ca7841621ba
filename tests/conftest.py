import os

# Under pytest-xdist (make test: one worker per core) each worker computes on one thread:
# torch's and OpenMP's default of one thread per core in every worker oversubscribes the
# cores several times over. Set before torch starts its thread pools.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# Without a GPU, the GPU backends' kernels run on CPU tensors: Triton's in its interpreter, the
# CUDA kernels in the CPU emulation of the CUDA execution model (fusedattn._C_emulated). Set
# before any import of triton or use of fusedattn. With a GPU they run natively.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    os.environ.setdefault("FUSEDATTN_CUDA_EMULATE", "1")


def pytest_collection_modifyitems(items):
    """Tests marked `long` first, in order otherwise: under pytest-xdist, a long test that is
    left for last runs alone on one core while the other cores idle."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
