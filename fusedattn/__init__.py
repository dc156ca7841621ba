"""fusedattn: fused kernels for recalibrated attention pooling with a weighted diversity loss.

    out = fusedattn.attention_pool(features, attn_logits, pool="sum", compute_diversity=True)
    v, s, div = out   # pooled (B, K, C), importance (B, K), diversity (B,)

The math and the contract every backend implements: SPEC.md (README, "The math").
"""

from ._build import build_info
from ._dispatch import (
    BACKENDS,
    AttentionPoolOutput,
    BackendUnavailableError,
    attention_pool,
    available_backends,
    backend_status,
)

__version__ = build_info().get("version", "0.1.0")

__all__ = [
    "AttentionPoolOutput",
    "BACKENDS",
    "BackendUnavailableError",
    "attention_pool",
    "available_backends",
    "backend_status",
    "build_info",
]
