"""Whole models built on the fused ops: the partial-face ResNet-50 (torchvision needed: pip
install fusedattn[models]) and the IR-SE50 face backbone."""

from .ops.attention_pool.models import (TORCHVISION_ERROR, PartialFaceResNet,  # noqa: F401
                                        partial_face_resnet50)

from .ops.channel_attention.models import IRSE50, ir_se50  # noqa: E402

__all__ = ["IRSE50", "PartialFaceResNet", "ir_se50", "partial_face_resnet50"]
