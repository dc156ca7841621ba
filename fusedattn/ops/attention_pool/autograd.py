"""What every fused backend of attention_pool shares (the schemas of
csrc/attention_pool/ops.cpp, which the Triton custom ops repeat): fake (meta) kernels for
torch.compile, and the autograd formula. The forward saves its inputs and the small per-(b, k)
statistics, and the spec's backward (docs/attention_pool.md) runs as the backward op."""

import torch

from ..._registration import register_fused_op
from ..._validation import accumulate_dtype


def forward_fake(features, logits, pool, compute_diversity):
    B, C = features.shape[:2]
    K = logits.shape[1]
    acc = accumulate_dtype(features.dtype)
    return (features.new_empty((B, K, C)), features.new_empty((B, K), dtype=acc),
            features.new_empty((B if compute_diversity else 0,), dtype=acc),
            features.new_empty((B, K), dtype=acc))


def inference_fake(features, logits, pool, compute_diversity):
    return forward_fake(features, logits, pool, compute_diversity)[:3]


def backward_fake(grad_pooled, grad_importance, grad_diversity, features, logits, importance,
                  logsumexp, pool):
    # The gradients are laid out like the inputs (channels_last stays channels_last).
    return torch.empty_like(features), torch.empty_like(logits)


def register(forward_op, backward_op, inference_op=None):
    """forward_op(features, logits, pool, compute_diversity) -> (pooled, importance, diversity,
    logsumexp); backward_op(grad_pooled, grad_importance, grad_diversity or None, features,
    logits, importance, logsumexp, pool) -> (grad_features, grad_logits). The log-sum-exp is
    internal (never returned to users), so its gradient is ignored. inference_op(features,
    logits, pool, compute_diversity) -> (pooled, importance, diversity), where there is one,
    runs calls that record no graph. Returns the backend's run function: (features, logits,
    pool, compute_diversity) -> (pooled, importance, diversity or None), differentiable
    (fusedattn._registration.register_fused_op)."""

    def setup_context(ctx, inputs, output):
        features, logits, pool, compute_diversity = inputs
        _, importance, _, logsumexp = output
        ctx.save_for_backward(features, logits, importance, logsumexp)
        ctx.pool = pool
        ctx.compute_diversity = compute_diversity

    def backward(ctx, grad_pooled, grad_importance, grad_diversity, _grad_logsumexp):
        features, logits, importance, logsumexp = ctx.saved_tensors
        if grad_pooled is None:
            grad_pooled = features.new_zeros(
                (features.shape[0], logits.shape[1], features.shape[1]))
        if grad_importance is None:
            grad_importance = torch.zeros_like(importance)
        if not ctx.compute_diversity:
            grad_diversity = None
        grad_features, grad_logits = backward_op(grad_pooled, grad_importance, grad_diversity,
                                                 features, logits, importance, logsumexp,
                                                 ctx.pool)
        return (grad_features if ctx.needs_input_grad[0] else None,
                grad_logits if ctx.needs_input_grad[1] else None, None, None)

    call = register_fused_op(forward_op, backward_op, forward_fake=forward_fake,
                             backward_fake=backward_fake, setup_context=setup_context,
                             backward=backward, inference_op=inference_op,
                             inference_fake=inference_fake)

    def run(features, logits, pool, compute_diversity):
        outputs = call(features, logits, pool, compute_diversity)
        return outputs[0], outputs[1], outputs[2] if compute_diversity else None

    return run
