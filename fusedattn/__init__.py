"""fusedattn: fused kernels for the attention mechanisms of CNN face models.

    out = fusedattn.attention_pool(features, attn_logits, pool="sum", compute_diversity=True)
    v, s, div = out   # pooled (B, K, C), importance (B, K), diversity (B,)
    y = fusedattn.channel_attention(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias)  # SE block

Each op lives in its own folder (fusedattn/ops/<op>/) with its specification in
docs/<op>.md; the backend registry (fusedattn.backends) says which implementations run where.
"""

from ._library import build_info
from .backends import BACKEND_NAMES, BackendUnavailableError, available_backends, backend_status
from .ops.attention_pool import AttentionPoolOutput, attention_pool
from .ops.channel_attention import channel_attention

BACKENDS = BACKEND_NAMES
__version__ = build_info().get("version", "0.1.0")

__all__ = [
    "AttentionPoolOutput",
    "BACKENDS",
    "BackendUnavailableError",
    "attention_pool",
    "available_backends",
    "backend_status",
    "build_info",
    "channel_attention",
]
