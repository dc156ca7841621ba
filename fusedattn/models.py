"""Whole models built on the fused ops (torchvision needed: pip install fusedattn[models])."""

from .ops.attention_pool.models import (TORCHVISION_ERROR, PartialFaceResNet,  # noqa: F401
                                        partial_face_resnet50)

__all__ = ["PartialFaceResNet", "partial_face_resnet50"]
