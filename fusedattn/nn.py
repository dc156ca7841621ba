"""Drop-in modules of every fused op, and `convert`, which switches a model's plain-PyTorch
blocks to them in one call.

    head = fusedattn.nn.PartialFaceHead(in_channels=1024, num_maps=8)
    criterion = fusedattn.nn.PartialFaceLoss(256, num_classes, diversity_weight=1.0)
    out = head(features)                   # features (B, 1024, H, W)
    loss = criterion(out, labels).total
    model = fusedattn.nn.convert(model)    # plain-PyTorch blocks -> fused modules, in place
"""

from ._convert import convert, register_rule
from .ops.attention_pool import nn as _attention_pool_nn
from .ops.attention_pool.nn import (AttentionalPooling, PartialFaceHead, PartialFaceHeadOutput,
                                    PartialFaceLoss, PartialFaceLossOutput,
                                    ReferenceAttentionalPooling, ReferencePartialFaceHead,
                                    WeightedCrossEntropyLoss)

register_rule(_attention_pool_nn.to_fused)

__all__ = [
    "AttentionalPooling", "PartialFaceHead", "PartialFaceHeadOutput", "PartialFaceLoss",
    "PartialFaceLossOutput", "ReferenceAttentionalPooling", "ReferencePartialFaceHead",
    "WeightedCrossEntropyLoss", "convert",
]
