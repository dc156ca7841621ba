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
                      backward_fake: Callable, setup_context: Callable, backward: Callable,
                      inference_op=None, inference_fake: Callable | None = None) -> Callable:
    """forward_op's gradient is `backward(ctx, *grads)` after `setup_context(ctx, inputs,
    output)`; backward_op is what `backward` calls (it is not differentiable itself).
    inference_op (optional) is forward_op without the outputs only a backward needs, for calls
    that record no graph; its outputs are forward_op's first ones.

    Returns `call(*inputs)`, forward_op with that gradient: a torch.autograd.Function in eager
    mode (cheaper per call), the op itself (with its registered autograd) under torch.compile,
    inference_op where no graph is recorded."""
    torch.library.register_fake(forward_op)(forward_fake)
    torch.library.register_fake(backward_op)(backward_fake)
    torch.library.register_autograd(forward_op, backward, setup_context=setup_context)
    if inference_op is not None:
        torch.library.register_fake(inference_op)(inference_fake)
    no_graph_op = inference_op or forward_op

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
        # inference_mode no autograd key runs, nor a graph is recorded: the kernel itself.
        if torch.compiler.is_compiling():
            return forward_op(*inputs)
        if torch.is_inference_mode_enabled():
            return no_graph_op(*inputs)
        if not torch.is_grad_enabled():
            with torch._C._AutoDispatchBelowAutograd():
                return no_graph_op(*inputs)
        return Function.apply(*inputs)

    return call
