import os

import torch

# Without a GPU, Triton kernels run on CPU tensors in Triton's interpreter (set before any
# import of triton). With a GPU they run natively.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
