import os

import torch

# Without a GPU, the GPU backends' kernels run on CPU tensors: Triton's in its interpreter, the
# CUDA kernels in the CPU emulation of the CUDA execution model (fusedattn._C_emulated). Set
# before any import of triton or use of fusedattn. With a GPU they run natively.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    os.environ.setdefault("FUSEDATTN_CUDA_EMULATE", "1")
