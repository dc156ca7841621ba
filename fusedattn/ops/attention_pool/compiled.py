"""The "cpu" and "cuda" backends of attention_pool: the ops of the compiled extension
(csrc/attention_pool/), fusedattn::attention_pool_fwd/_bwd, whose kernel the dispatcher picks by
device. Importing this module loads fusedattn._C (ImportError saying why where it cannot)."""

import torch

from ... import _library
from . import autograd

if _library.load_error() is not None:
    raise ImportError(_library.load_error())

# (features, logits, pool, compute_diversity) -> (pooled, importance, diversity or None)
attention_pool = autograd.register(torch.ops.fusedattn.attention_pool_fwd.default,
                                   torch.ops.fusedattn.attention_pool_bwd.default,
                                   torch.ops.fusedattn.attention_pool_infer.default)
