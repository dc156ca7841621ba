"""channel_attention's modules: the fused squeeze-and-excitation block, its plain-PyTorch
reference, and the rule fusedattn.nn.convert uses to replace the SE blocks of existing models
(torchvision.ops.SqueezeExcitation, timm's SEModule and SqueezeExcite) in place.

    se = fusedattn.nn.ChannelAttention(channels=96, squeeze_channels=4, activation="silu")
    y = se(x)                              # x (B, 96, H, W)
    model = fusedattn.nn.convert(model)    # torchvision / timm SE blocks -> ChannelAttention
"""

from __future__ import annotations

import torch
from torch import nn

from ..._convert import Skipped, check_backend
from ..._validation import check_choice
from . import channel_attention
from .validation import ACTIVATIONS, GATES


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation as one fused op: y = x * gate(fc2(act(fc1(mean_n x)))).

    fc1 and fc2 are 1x1 nn.Conv2d layers named as in torchvision's SqueezeExcitation, so its
    state_dict loads unchanged (a block converted from timm's SqueezeExcite keeps that block's
    names, conv_reduce and conv_expand). forward(x (B, C, H, W) or (B, C, N)) -> y like x."""

    def __init__(self, channels: int, squeeze_channels: int, activation: str = "relu",
                 gate: str = "sigmoid", bias: bool = True, backend: str = "auto"):
        super().__init__()
        if channels < 1 or squeeze_channels < 1:
            raise ValueError(f"channels and squeeze_channels must be >= 1, got {channels} and "
                             f"{squeeze_channels}")
        self._configure(activation, gate, backend, ("fc1", "fc2"))
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1, bias=bias)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1, bias=bias)

    def _configure(self, activation, gate, backend, names):
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("gate", gate, GATES)
        check_backend(backend)
        self.activation, self.gate, self.backend = activation, gate, backend
        self.fc_names = names

    @classmethod
    def from_convs(cls, fc1: nn.Conv2d, fc2: nn.Conv2d, activation: str = "relu",
                   gate: str = "sigmoid", backend: str = "auto",
                   names: tuple = ("fc1", "fc2")) -> "ChannelAttention":
        """The block around existing 1x1 convolutions (shared, not copied), registered under
        `names`: how convert keeps a block's parameters and state_dict keys."""
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module._configure(activation, gate, backend, tuple(names))
        module.add_module(names[0], fc1)
        module.add_module(names[1], fc2)
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fc1, fc2 = getattr(self, self.fc_names[0]), getattr(self, self.fc_names[1])
        return channel_attention(x, fc1.weight, fc1.bias, fc2.weight, fc2.bias,
                                 activation=self.activation, gate=self.gate,
                                 backend=self.backend)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}, gate={self.gate!r}, backend={self.backend!r}"


class ReferenceChannelAttention(ChannelAttention):
    """The same block in plain PyTorch (the reference backend, eager autograd): what a model
    uses before `convert` switches it to the fused op."""

    def __init__(self, channels: int, squeeze_channels: int, activation: str = "relu",
                 gate: str = "sigmoid", bias: bool = True):
        super().__init__(channels, squeeze_channels, activation, gate, bias, backend="reference")


# ----------------------------------------------------------------------------- conversion

def _activation_name(module: nn.Module):
    """"relu", "silu", or None: the bottleneck activations the op computes (torch's modules
    and timm's equivalents, recognized by type; timm stays an optional dependency)."""
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.SiLU) or type(module).__name__ in ("Swish", "SwishMe", "SwishAuto"):
        return "silu"
    return None


def _gate_name(module: nn.Module):
    if isinstance(module, nn.Sigmoid) or (type(module).__name__ == "Sigmoid"
                                          and type(module).__module__.startswith("timm.")):
        return "sigmoid"
    if isinstance(module, nn.Hardsigmoid) or type(module).__name__ in ("HardSigmoid",
                                                                       "HardSigmoidMe"):
        return "hardsigmoid"
    return None


def _pointwise_conv_problem(conv, name: str):
    """Why `conv` is not a plain 1x1 convolution (the op's fc layers), or None."""
    if type(conv) is not nn.Conv2d:
        return f"{name} is a {type(conv).__name__}, not an nn.Conv2d"
    if (conv.kernel_size != (1, 1) or conv.stride != (1, 1) or conv.dilation != (1, 1)
            or conv.groups != 1 or conv.padding not in ((0, 0), "valid")):
        return (f"{name} is not a plain 1x1 convolution (kernel {conv.kernel_size}, stride "
                f"{conv.stride}, padding {conv.padding}, dilation {conv.dilation}, groups "
                f"{conv.groups})")
    return None


def _block(fc1, fc2, act_module, gate_module, backend, names):
    """The fused block for these parts, or Skipped saying which part the op does not compute."""
    for conv, name in ((fc1, names[0]), (fc2, names[1])):
        problem = _pointwise_conv_problem(conv, name)
        if problem:
            return Skipped(problem)
    activation, gate = _activation_name(act_module), _gate_name(gate_module)
    if activation is None:
        return Skipped(f"activation {type(act_module).__name__} is not ReLU or SiLU")
    if gate is None:
        return Skipped(f"gate {type(gate_module).__name__} is not Sigmoid or Hardsigmoid")
    return ChannelAttention.from_convs(fc1, fc2, activation, gate, backend, names)


def _torchvision_squeeze_excitation():
    try:
        from torchvision.ops import SqueezeExcitation
        return SqueezeExcitation
    except Exception:  # noqa: BLE001 -- missing, or built for another torch
        return None


def _timm_classes():
    try:
        from timm.layers.squeeze_excite import SEModule
        from timm.models._efficientnet_blocks import SqueezeExcite
        return SEModule, SqueezeExcite
    except Exception:  # noqa: BLE001 -- timm is optional
        return None, None


def to_fused(module: nn.Module, backend: str):
    """channel_attention's rule for fusedattn.nn.convert: the fused replacement of a
    ReferenceChannelAttention, a torchvision SqueezeExcitation or a timm SEModule / SqueezeExcite
    whose configuration the op computes exactly (the same 1x1 convolutions, kept); Skipped with
    the reason for one it does not (timm's max-pool branch or norm layer, another activation or
    gate, a subclass); None for any other module."""
    if isinstance(module, ReferenceChannelAttention):
        fc1, fc2 = (getattr(module, n) for n in module.fc_names)
        return ChannelAttention.from_convs(fc1, fc2, module.activation, module.gate, backend,
                                           module.fc_names)
    squeeze_excitation = _torchvision_squeeze_excitation()
    if squeeze_excitation is not None and isinstance(module, squeeze_excitation):
        if type(module) is not squeeze_excitation:
            return Skipped(f"a subclass of SqueezeExcitation ({type(module).__name__}): its "
                           "forward may differ")
        pool = module.avgpool
        if not isinstance(pool, nn.AdaptiveAvgPool2d) or pool.output_size not in (1, (1, 1)):
            return Skipped(f"its pooling {pool} is not a global average")
        return _block(module.fc1, module.fc2, module.activation, module.scale_activation,
                      backend, ("fc1", "fc2"))
    se_module, squeeze_excite = _timm_classes()
    if se_module is not None and isinstance(module, (se_module, squeeze_excite)):
        if type(module) not in (se_module, squeeze_excite):
            return Skipped(f"a subclass of timm's {type(module).__mro__[1].__name__} "
                           f"({type(module).__name__}): its forward may differ")
        if type(module) is se_module:
            if module.add_maxpool:
                return Skipped("timm SEModule with add_maxpool=True (the squeeze also takes a "
                               "max over the pixels)")
            if not isinstance(module.bn, nn.Identity):
                return Skipped(f"timm SEModule with a norm layer ({type(module.bn).__name__}) "
                               "in the bottleneck")
            return _block(module.fc1, module.fc2, module.act, module.gate, backend,
                          ("fc1", "fc2"))
        return _block(module.conv_reduce, module.conv_expand, module.act1, module.gate, backend,
                      ("conv_reduce", "conv_expand"))
    return None
