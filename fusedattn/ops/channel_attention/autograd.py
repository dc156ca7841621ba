"""What every fused backend of channel_attention shares (the schemas of
csrc/channel_attention/ops.cpp, which the Triton custom ops repeat): fake (meta) kernels for
torch.compile, and the autograd formula. The forward saves x, the weights and the small
per-sample statistics (squeezed, hidden, gate_logits); the spec's backward
(docs/channel_attention.md) runs as the backward op."""

import torch

from ..._registration import register_fused_op
from ..._validation import accumulate_dtype


def forward_fake(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate):
    B, C = x.shape[:2]
    R = fc1_weight.shape[0]
    acc = accumulate_dtype(x.dtype)
    # y keeps x's memory format (channels_last stays channels_last).
    return (torch.empty_like(x), x.new_empty((B, C), dtype=acc), x.new_empty((B, R), dtype=acc),
            x.new_empty((B, C), dtype=acc))


def inference_fake(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate):
    return torch.empty_like(x)


def backward_fake(grad_y, x, fc1_weight, fc2_weight, squeezed, hidden, gate_logits, activation,
                  gate):
    acc = accumulate_dtype(x.dtype)
    R, C = fc1_weight.shape[:2]
    return (torch.empty_like(x), x.new_empty(fc1_weight.shape, dtype=acc),
            x.new_empty((R,), dtype=acc), x.new_empty(fc2_weight.shape, dtype=acc),
            x.new_empty((C,), dtype=acc))


def register(forward_op, backward_op, inference_op=None):
    """forward_op(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate) -> (y,
    squeezed, hidden, gate_logits); backward_op(grad_y, x, fc1_weight, fc2_weight, squeezed,
    hidden, gate_logits, activation, gate) -> (grad_x, grad_fc1_weight, grad_fc1_bias,
    grad_fc2_weight, grad_fc2_bias) in the accumulate type. The statistics are internal (never
    returned to users), so their gradients are ignored. inference_op (same arguments) -> y runs
    calls that record no graph. Returns the backend's run function: the same arguments -> y,
    differentiable (fusedattn._registration.register_fused_op)."""

    def setup_context(ctx, inputs, output):
        x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate = inputs
        _, squeezed, hidden, gate_logits = output
        ctx.save_for_backward(x, fc1_weight, fc2_weight, squeezed, hidden, gate_logits)
        ctx.activation = activation
        ctx.gate = gate
        # The biases' dtypes, or None: their gradients go back in them.
        ctx.bias_dtypes = (None if fc1_bias is None else fc1_bias.dtype,
                           None if fc2_bias is None else fc2_bias.dtype)

    def backward(ctx, grad_y, _grad_squeezed, _grad_hidden, _grad_gate_logits):
        x, fc1_weight, fc2_weight, squeezed, hidden, gate_logits = ctx.saved_tensors
        if grad_y is None:
            grad_y = torch.zeros_like(x)
        gx, gw1, gb1, gw2, gb2 = backward_op(grad_y, x, fc1_weight, fc2_weight, squeezed,
                                             hidden, gate_logits, ctx.activation, ctx.gate)
        need = ctx.needs_input_grad
        b1_dtype, b2_dtype = ctx.bias_dtypes
        return (gx if need[0] else None,
                gw1.to(fc1_weight.dtype) if need[1] else None,
                gb1.to(b1_dtype) if need[2] and b1_dtype is not None else None,
                gw2.to(fc2_weight.dtype) if need[3] else None,
                gb2.to(b2_dtype) if need[4] and b2_dtype is not None else None,
                None, None)

    call = register_fused_op(forward_op, backward_op, forward_fake=forward_fake,
                             backward_fake=backward_fake, setup_context=setup_context,
                             backward=backward, inference_op=inference_op,
                             inference_fake=inference_fake)

    def run(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate):
        out = call(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, activation, gate)
        return out if isinstance(out, torch.Tensor) else out[0]

    return run
