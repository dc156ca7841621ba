"""The full model of Hörmann et al. (needs the optional torchvision: pip install fusedattn[models]);
public as fusedattn.models.

Extract: a ResNet-50 truncated after its third stage, with three downsamplings (the stem's
stride-2 conv, layer2 and layer3; the stem's max-pool is dropped), so a 160x160 face gives the
paper's 20x20x1024 feature map F. Attend and Aggregate: PartialFaceHead on F, its attention
branch (1x1 conv + ReLU) reading the same block-3 output.
"""

from __future__ import annotations

import torch
from torch import nn

from .nn import PartialFaceHead, PartialFaceHeadOutput

try:
    import torchvision
    TORCHVISION_ERROR = None
except Exception as exc:  # noqa: BLE001 -- missing, or built for another torch
    torchvision = None
    TORCHVISION_ERROR = f"{type(exc).__name__}: {exc}"


class PartialFaceResNet(nn.Module):
    def __init__(self, backbone: nn.Module, head: PartialFaceHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> PartialFaceHeadOutput:
        return self.head(self.backbone(images))


def partial_face_resnet50(num_maps: int = 8, embed_dim: int = 256, pretrained: bool = False,
                          pool: str = "sum", backend: str = "auto") -> PartialFaceResNet:
    """The truncated ResNet-50 backbone with the attention head. pretrained=True loads
    torchvision's ImageNet weights for the backbone (downloaded by torchvision)."""
    if torchvision is None:
        raise ImportError("fusedattn.models needs torchvision (pip install fusedattn[models]); "
                          f"importing it failed: {TORCHVISION_ERROR}")
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1 if pretrained else None
    resnet = torchvision.models.resnet50(weights=weights)
    backbone = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu,
                             resnet.layer1, resnet.layer2, resnet.layer3)
    head = PartialFaceHead(1024, num_maps, embed_dim, pool=pool, backend=backend)
    return PartialFaceResNet(backbone, head)
