"""attention_pool's modules: the fused op as a module, the Attend / Aggregate head of Hörmann et
al. ("Attention-based Partial Face Recognition", ICIP 2021), its losses, and the conversion of
the plain-PyTorch module to the fused one (used by fusedattn.nn.convert).

    head = fusedattn.nn.PartialFaceHead(in_channels=1024, num_maps=8)
    criterion = fusedattn.nn.PartialFaceLoss(256, num_classes, diversity_weight=1.0)
    out = head(features)                   # features (B, 1024, H, W)
    loss = criterion(out, labels).total
"""

from __future__ import annotations

import math
from typing import Iterable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..._convert import check_backend
from ..._validation import check_choice
from . import AttentionPoolOutput, attention_pool
from .validation import POOL_MODES


def _check_settings(pool, backend):
    check_choice("pool", pool, POOL_MODES)
    check_backend(backend)


class AttentionalPooling(nn.Module):
    """fusedattn.attention_pool as a module: forward(features, attn_logits) ->
    AttentionPoolOutput(pooled (B, K, C), importance (B, K), diversity (B,) or None)."""

    def __init__(self, pool: str = "sum", compute_diversity: bool = True, backend: str = "auto"):
        super().__init__()
        _check_settings(pool, backend)
        self.pool = pool
        self.compute_diversity = compute_diversity
        self.backend = backend

    def forward(self, features: torch.Tensor, attn_logits: torch.Tensor) -> AttentionPoolOutput:
        return attention_pool(features, attn_logits, pool=self.pool,
                              compute_diversity=self.compute_diversity, backend=self.backend)

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}, compute_diversity={self.compute_diversity}, " \
               f"backend={self.backend!r}"


class ReferenceAttentionalPooling(AttentionalPooling):
    """The same module in plain PyTorch (the reference backend, eager autograd): what a model
    uses before `convert` switches it to the fused op."""

    def __init__(self, pool: str = "sum", compute_diversity: bool = True):
        super().__init__(pool, compute_diversity, backend="reference")

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}, compute_diversity={self.compute_diversity}"


class PartialFaceHeadOutput(NamedTuple):
    embedding: torch.Tensor            # (B, D): the mean of the per-map embeddings
    map_embeddings: torch.Tensor       # (B, K, D): one embedding per attention map
    importance: torch.Tensor           # (B, K): s_k, softmax over the maps' global averages
    diversity: Optional[torch.Tensor]  # (B,): the weighted diversity loss per sample
    attention: torch.Tensor            # (B, K, H, W): the attention logits (after the ReLU)


class PartialFaceHead(nn.Module):
    """Attend and Aggregate: K attention maps from a 1x1 conv + ReLU (on the features, or on a
    separate input of attn_in_channels), recalibrated attentional pooling of the features (the
    fused op), then K separate fully connected layers to a joint embedding space, as ONE batched
    matmul over a (K, C, D) weight, and their mean.

    forward(features (B, C, H, W), attn_input (B, C', H, W) or None) -> PartialFaceHeadOutput
    """

    def __init__(self, in_channels: int, num_maps: int, embed_dim: int = 256,
                 attn_in_channels: Optional[int] = None, pool: str = "sum",
                 backend: str = "auto"):
        super().__init__()
        if num_maps < 1 or in_channels < 1 or embed_dim < 1:
            raise ValueError(f"in_channels, num_maps and embed_dim must be >= 1, got "
                             f"{in_channels}, {num_maps}, {embed_dim}")
        _check_settings(pool, backend)
        self.attention = nn.Sequential(
            nn.Conv2d(attn_in_channels or in_channels, num_maps, kernel_size=1), nn.ReLU())
        self.pooling = (ReferenceAttentionalPooling(pool) if backend == "reference"
                        else AttentionalPooling(pool, True, backend))
        self.weight = nn.Parameter(torch.empty(num_maps, in_channels, embed_dim))
        self.bias = nn.Parameter(torch.empty(num_maps, embed_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Each map's layer initialized as nn.Linear(in_channels, embed_dim) would be.
        bound = 1 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, features: torch.Tensor,
                attn_input: Optional[torch.Tensor] = None) -> PartialFaceHeadOutput:
        attention = self.attention(features if attn_input is None else attn_input)
        pooled, importance, diversity = self.pooling(features, attention)
        # (K, B, C) @ (K, C, D) + (K, 1, D): the K fully connected layers in one batched op.
        maps = torch.baddbmm(self.bias.unsqueeze(1).to(pooled.dtype), pooled.transpose(0, 1),
                             self.weight.to(pooled.dtype)).transpose(0, 1)
        return PartialFaceHeadOutput(maps.mean(dim=1), maps, importance, diversity, attention)


class ReferencePartialFaceHead(PartialFaceHead):
    """PartialFaceHead on the plain-PyTorch pooling (the same interface and parameters)."""

    def __init__(self, in_channels: int, num_maps: int, embed_dim: int = 256,
                 attn_in_channels: Optional[int] = None, pool: str = "sum"):
        super().__init__(in_channels, num_maps, embed_dim, attn_in_channels, pool,
                         backend="reference")


class WeightedCrossEntropyLoss(nn.Module):
    """The cross-entropy of every map's embedding through ONE shared classifier, weighted by the
    map's importance s_k and summed over maps (the importances sum to 1), averaged over the
    batch. The weights keep their gradient: a map that cannot classify (an occluded region)
    learns to lower its own importance."""

    def __init__(self, embed_dim: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(embed_dim, num_classes)

    def forward(self, map_embeddings: torch.Tensor, importance: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
        B, K, _ = map_embeddings.shape
        logits = self.classifier(map_embeddings).float()
        ce = F.cross_entropy(logits.flatten(0, 1), target.repeat_interleave(K),
                             reduction="none").view(B, K)
        return (importance.float() * ce).sum(dim=1).mean()


class PartialFaceLossOutput(NamedTuple):
    total: torch.Tensor
    cross_entropy: torch.Tensor
    diversity: torch.Tensor
    l2: torch.Tensor


class PartialFaceLoss(nn.Module):
    """total = ce_weight * weighted CE + diversity_weight * mean diversity
               + l2_weight * sum of squared parameters
    forward(head_output, target, parameters=None): the L2 term covers `parameters` (e.g. the
    model's) and this loss's classifier."""

    def __init__(self, embed_dim: int, num_classes: int, ce_weight: float = 1.0,
                 diversity_weight: float = 1.0, l2_weight: float = 0.0):
        super().__init__()
        self.cross_entropy = WeightedCrossEntropyLoss(embed_dim, num_classes)
        self.ce_weight = ce_weight
        self.diversity_weight = diversity_weight
        self.l2_weight = l2_weight

    def forward(self, out: PartialFaceHeadOutput, target: torch.Tensor,
                parameters: Optional[Iterable[torch.Tensor]] = None) -> PartialFaceLossOutput:
        ce = self.cross_entropy(out.map_embeddings, out.importance, target)
        div = out.diversity.float().mean() if out.diversity is not None else ce.new_zeros(())
        l2 = ce.new_zeros(())
        if self.l2_weight:
            params = {id(p): p for p in [*self.parameters(), *(parameters or [])]}  # once each
            l2 = sum(p.float().square().sum() for p in params.values())
        total = self.ce_weight * ce + self.diversity_weight * div + self.l2_weight * l2
        return PartialFaceLossOutput(total, ce, div, l2)


def to_fused(module: nn.Module, backend: str):
    """The fused replacement of a plain-PyTorch ReferenceAttentionalPooling (same settings; it
    has no parameters), or None for any other module: attention_pool's rule for
    fusedattn.nn.convert."""
    if isinstance(module, ReferenceAttentionalPooling):
        return AttentionalPooling(module.pool, module.compute_diversity, backend)
    return None
