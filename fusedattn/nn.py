"""Drop-in modules of every fused op, and `convert`, which switches a model's plain-PyTorch
blocks to them in one call.

    head = fusedattn.nn.PartialFaceHead(in_channels=1024, num_maps=8)
    criterion = fusedattn.nn.PartialFaceLoss(256, num_classes, diversity_weight=1.0)
    out = head(features)                   # features (B, 1024, H, W)
    loss = criterion(out, labels).total
    se = fusedattn.nn.ChannelAttention(channels=96, squeeze_channels=4, activation="silu")
    model = fusedattn.nn.convert(model)    # plain-PyTorch and torchvision/timm SE blocks -> fused
    report = fusedattn.nn.ConvertReport()
    fusedattn.nn.convert(model, report=report); print(report)   # what was replaced or skipped
"""

from ._convert import ConvertReport, Skipped, convert, register_rule
from .ops.attention_pool import nn as _attention_pool_nn
from .ops.attention_pool.nn import (AttentionalPooling, PartialFaceHead, PartialFaceHeadOutput,
                                    PartialFaceLoss, PartialFaceLossOutput,
                                    ReferenceAttentionalPooling, ReferencePartialFaceHead,
                                    WeightedCrossEntropyLoss)
from .ops.channel_attention import nn as _channel_attention_nn
from .ops.channel_attention.nn import ChannelAttention, ReferenceChannelAttention

register_rule(_attention_pool_nn.to_fused)
register_rule(_channel_attention_nn.to_fused)

__all__ = [
    "AttentionalPooling", "ChannelAttention", "ConvertReport", "PartialFaceHead",
    "PartialFaceHeadOutput", "PartialFaceLoss", "PartialFaceLossOutput", "ReferenceAttentionalPooling", "ReferenceChannelAttention",
    "ReferencePartialFaceHead", "Skipped", "WeightedCrossEntropyLoss", "convert",
]
