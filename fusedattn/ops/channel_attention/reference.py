"""channel_attention's reference backend: the spec (docs/channel_attention.md) written out in
plain PyTorch, differentiated by autograd.

The squeeze, the MLP and the gate are computed in float32 (float64 for float64 inputs) whatever
the input dtype, and the excite's product is rounded once to x's dtype, so this is the yardstick
every fused backend is tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..._validation import accumulate_dtype


def squeeze_excite_scale(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate):
    """The gate g (B, C) and the statistics of the spec: (s, hidden, gate_logits, g)."""
    acc = accumulate_dtype(x.dtype)
    B, C = x.shape[:2]
    R = fc1_weight.shape[0]
    s = x.flatten(2).mean(dim=-1, dtype=acc) if x.dim() == 4 else x.mean(dim=-1, dtype=acc)
    hidden = F.linear(s, fc1_weight.reshape(R, C).to(acc),
                      None if fc1_bias is None else fc1_bias.to(acc))
    z = F.relu(hidden) if activation == "relu" else F.silu(hidden)
    gate_logits = F.linear(z, fc2_weight.reshape(C, R).to(acc),
                           None if fc2_bias is None else fc2_bias.to(acc))
    # hardsigmoid as torch computes it, relu6(u + 3) / 6, with the same derivative (1/6 strictly
    # inside (-3, 3)); F.hardsigmoid's own backward rounds 1/6 to float even for float64.
    g = torch.sigmoid(gate_logits) if gate == "sigmoid" else F.relu6(gate_logits + 3) / 6
    return s, hidden, gate_logits, g


def channel_attention(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate):
    """y = x * g[b, c] in x's dtype and memory format."""
    g = squeeze_excite_scale(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate)[-1]
    g = g.reshape(g.shape + (1,) * (x.dim() - 2))
    return (x * g).to(x.dtype)
