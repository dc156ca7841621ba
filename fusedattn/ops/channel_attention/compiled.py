"""The "cpu" and "cuda" backends of channel_attention: the ops of the compiled extension
(csrc/channel_attention/), fusedattn::channel_attention_fwd/_infer/_bwd, whose kernel the
dispatcher picks by device. Importing this module loads fusedattn._C (ImportError saying why
where it cannot)."""

import torch

from ... import _library
from . import autograd

if _library.load_error() is not None:
    raise ImportError(_library.load_error())

_ops = torch.ops.fusedattn
# (x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate) -> y
channel_attention = autograd.register(_ops.channel_attention_fwd.default,
                                      _ops.channel_attention_bwd.default,
                                      _ops.channel_attention_infer.default)
