"""attention_pool's reference backend: the spec (docs/attention_pool.md) written out in plain
PyTorch, differentiated by autograd.

It computes in float32 (float64 for float64 inputs) whatever the input dtype, so it is both the
yardstick every fused backend is tested against and the "eager PyTorch" of the benchmarks.
"""

from __future__ import annotations

import torch

from ..._validation import accumulate_dtype


def attention_pool(features: torch.Tensor, logits: torch.Tensor, pool: str,
                   compute_diversity: bool):
    """features (B, C, H, W) or (B, C, N), logits (B, K, H, W) or (B, K, N) -> (pooled (B, K, C),
    importance (B, K), diversity (B,) or None)."""
    acc = accumulate_dtype(features.dtype)
    f = features.flatten(2).to(acc)
    a = logits.flatten(2).to(acc)
    sig = torch.sigmoid(a)
    importance = torch.softmax(sig.mean(dim=-1), dim=-1)  # GAP, then softmax over the K maps
    w = importance.unsqueeze(-1) * sig                     # recalibrated maps
    pooled = torch.bmm(w, f.transpose(1, 2))                # (B, K, C)
    if pool == "mean":
        pooled = pooled / a.shape[-1]
    diversity = None
    if compute_diversity:
        p = torch.softmax(a, dim=-1)                        # each raw map over the pixels
        # torch.max(dim) sends the gradient to the lowest k attaining the max: the spec's tie rule.
        pixel_max = (importance.unsqueeze(-1) * p).max(dim=1).values
        diversity = 1 - pixel_max.sum(dim=-1)
    return pooled.to(features.dtype), importance, diversity
