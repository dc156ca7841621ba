"""The "cpu" and "cuda" backends of attention_pool: the ops of the compiled extension
(csrc/attention_pool/), fusedattn::attention_pool_fwd/_bwd, whose kernel the dispatcher picks by
device. Imported only once one of them is chosen, after fusedattn._C has loaded."""

import torch

from . import autograd

FORWARD = torch.ops.fusedattn.attention_pool_fwd.default
autograd.register(FORWARD, torch.ops.fusedattn.attention_pool_bwd.default)


def attention_pool(features: torch.Tensor, logits: torch.Tensor, pool: str,
                   compute_diversity: bool):
    pooled, importance, diversity, _ = FORWARD(features, logits, pool, compute_diversity)
    return pooled, importance, diversity if compute_diversity else None
