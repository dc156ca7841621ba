"""Registering an op's fake (meta) kernels and autograd formula with torch.library, once, for
every backend that implements the op's schemas (the compiled ops of fusedattn._C and each
Triton custom op alike), as torch.library recommends: torch.compile then traces the ops without
graph breaks, and torch.library.opcheck checks them."""

from __future__ import annotations

from typing import Callable

import torch


def register_fakes_and_autograd(forward_op, backward_op, *, forward_fake: Callable,
                                backward_fake: Callable, setup_context: Callable,
                                backward: Callable) -> None:
    """forward_op's gradient is `backward(ctx, *grads)` after `setup_context(ctx, inputs,
    output)`; backward_op is what `backward` calls (it is not differentiable itself)."""
    torch.library.register_fake(forward_op)(forward_fake)
    torch.library.register_fake(backward_op)(backward_fake)
    torch.library.register_autograd(forward_op, backward, setup_context=setup_context)
