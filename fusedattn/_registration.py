"""Registering an op's fake (meta) kernels and autograd formula with torch.library, once, for
every backend that implements the op's schemas (the compiled ops of fusedattn._C and each
Triton custom op alike), as torch.library recommends: torch.compile then traces the ops without
graph breaks, and torch.library.opcheck checks them.

The same formula also runs eager calls, through a torch.autograd.Function (C++ autograd
machinery, no per-call Python wrapper of torch.library's): what an op's public function calls.
"""

from __future__ import annotations

from typing import Callable

import torch


def register_fused_op(forward_op, backward_op, *, forward_fake: Callable,
                      backward_fake: Callable, setup_context: Callable,
                      backward: Callable) -> Callable:
    """forward_op's gradient is `backward(ctx, *grads)` after `setup_context(ctx, inputs,
    output)`; backward_op is what `backward` calls (it is not differentiable itself). Returns
    `call(*inputs)`, forward_op with that gradient: a torch.autograd.Function in eager mode
    (cheaper per call), the op itself (with its registered autograd) under torch.compile."""
    torch.library.register_fake(forward_op)(forward_fake)
    torch.library.register_fake(backward_op)(backward_fake)
    torch.library.register_autograd(forward_op, backward, setup_context=setup_context)

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            with torch._C._AutoDispatchBelowAutograd():  # the op's kernel, not its autograd
                output = forward_op(*inputs)
            setup_context(ctx, inputs, output)
            return output

        @staticmethod
        def backward(ctx, *grads):
            return backward(ctx, *grads)


    def call(*inputs):
        # Under torch.compile the op itself (traced with its registered autograd); under
        # inference_mode no autograd key runs: the kernel itself.
        if torch.compiler.is_compiling() or torch.is_inference_mode_enabled():
            return forward_op(*inputs)
        if not torch.is_grad_enabled():
            with torch._C._AutoDispatchBelowAutograd():
                return forward_op(*inputs)
        return Function.apply(*inputs)

    return call
