"""The "cpu" and "cuda" backends of attention_pool: the ops of the compiled extension
(csrc/attention_pool/), fusedattn::attention_pool_fwd/_bwd, whose kernel the dispatcher picks by
device. Importing this module loads fusedattn._C (ImportError saying why where it cannot)."""

import torch

from ... import _library
from . import autograd

if _library.load_error() is not None:
    raise ImportError(_library.load_error())

forward = autograd.register(torch.ops.fusedattn.attention_pool_fwd.default,
                            torch.ops.fusedattn.attention_pool_bwd.default)


def attention_pool(features: torch.Tensor, logits: torch.Tensor, pool: str,
                   compute_diversity: bool):
    pooled, importance, diversity, _ = forward(features, logits, pool, compute_diversity)
    return pooled, importance, diversity if compute_diversity else None
