"""fusedattn.nn.convert: swaps the plain-PyTorch blocks of a model for the fused modules, in
place. Each op contributes a rule (its nn module's `to_fused`): a function from a module to its
fused replacement, None when the rule does not apply to it, or a `Skipped` saying why a block
the rule recognizes is left alone (a configuration the fused op does not compute exactly).
`convert(model, report=ConvertReport())` records both."""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional, Union

from torch import nn

from .backends import BACKEND_NAMES


class Skipped(NamedTuple):
    """A rule's answer for a block it recognizes but leaves alone, and why."""
    reason: str


Rule = Callable[[nn.Module, str], Union[nn.Module, Skipped, None]]
_RULES: list = []


def register_rule(rule: Rule) -> None:
    _RULES.append(rule)


def check_backend(backend) -> None:
    if backend != "auto" and backend not in BACKEND_NAMES:
        raise ValueError(f"backend must be 'auto' or one of {list(BACKEND_NAMES)}, got "
                         f"{backend!r}")


@dataclasses.dataclass
class ConvertReport:
    """What convert replaced and what it left alone, by the blocks' names in the model
    (named_modules): replaced [(name, old type, new type)], skipped [(name, type, reason)]."""
    replaced: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"replaced {len(self.replaced)} block(s), skipped {len(self.skipped)}"]
        lines += [f"  replaced {name or '(model)'}: {old} -> {new}"
                  for name, old, new in self.replaced]
        lines += [f"  skipped  {name or '(model)'}: {kind}: {why}"
                  for name, kind, why in self.skipped]
        return "\n".join(lines)


def _type_name(module: nn.Module) -> str:
    kind = type(module)
    return f"{kind.__module__}.{kind.__qualname__}"


def _replacement(module: nn.Module, backend: str):
    for rule in _RULES:
        answer = rule(module, backend)
        if answer is not None:
            return answer
    return None


def _convert(module: nn.Module, backend: str, name: str, report: Optional[ConvertReport]):
    answer = _replacement(module, backend)
    if isinstance(answer, Skipped):
        if report is not None:
            report.skipped.append((name, _type_name(module), answer.reason))
    elif answer is not None:
        if report is not None:
            report.replaced.append((name, _type_name(module), _type_name(answer)))
        return answer
    for child_name, child in module.named_children():
        setattr(module, child_name,
                _convert(child, backend, f"{name}.{child_name}" if name else child_name, report))
    return module


def convert(model: nn.Module, backend: str = "auto", *,
            report: Optional[ConvertReport] = None) -> nn.Module:
    """Replaces, in place, every block of `model` that a fused module computes exactly (the
    plain-PyTorch ReferenceAttentionalPooling and ReferenceChannelAttention, torchvision's
    SqueezeExcitation, timm's SEModule and SqueezeExcite, ...) and returns the model;
    parameters, state_dict keys and outputs are unchanged. A convertible block passed as the
    model itself is returned converted. With `report` (a ConvertReport), what was replaced and
    what was left alone, and why, is appended to it."""
    check_backend(backend)
    return _convert(model, backend, "", report)
