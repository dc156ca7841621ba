"""fusedattn.nn.convert: swaps the plain-PyTorch blocks of a model for the fused modules, in
place. Each op contributes a rule (its nn module's `to_fused`): a function from a module to its
fused replacement, or None when the rule does not apply."""

from __future__ import annotations

from typing import Callable, Optional

from torch import nn

from .backends import BACKEND_NAMES

Rule = Callable[[nn.Module, str], Optional[nn.Module]]
_RULES: list = []


def register_rule(rule: Rule) -> None:
    _RULES.append(rule)


def check_backend(backend) -> None:
    if backend != "auto" and backend not in BACKEND_NAMES:
        raise ValueError(f"backend must be 'auto' or one of {list(BACKEND_NAMES)}, got "
                         f"{backend!r}")


def _replacement(module: nn.Module, backend: str) -> Optional[nn.Module]:
    for rule in _RULES:
        fused = rule(module, backend)
        if fused is not None:
            return fused
    return None


def convert(model: nn.Module, backend: str = "auto") -> nn.Module:
    """Replaces, in place, every block of `model` that a fused module computes exactly (the
    plain-PyTorch ReferenceAttentionalPooling, ...) and returns the model; parameters and
    state_dict keys are unchanged. A convertible block passed as the model itself is returned
    converted."""
    check_backend(backend)
    fused = _replacement(model, backend)
    if fused is not None:
        return fused
    for name, child in model.named_children():
        setattr(model, name, convert(child, backend))
    return model
