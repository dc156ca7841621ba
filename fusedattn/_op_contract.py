"""What every fused backend's pair of ops shares (the schemas of csrc/attention_pool_ops.cpp):
their fake (meta) kernels, for torch.compile, and the autograd formula: the forward saves its
inputs and the small per-(b, k) statistics, and SPEC.md's backward runs as the backward op."""

import torch

from ._validation import accumulate_dtype


def attention_pool_fwd_fake(features, logits, pool, compute_diversity):
    B, C, _ = features.shape
    K = logits.shape[1]
    acc = accumulate_dtype(features.dtype)
    return (features.new_empty((B, K, C)), features.new_empty((B, K), dtype=acc),
            features.new_empty((B if compute_diversity else 0,), dtype=acc),
            features.new_empty((B, K), dtype=acc))


def attention_pool_bwd_fake(grad_pooled, grad_importance, grad_diversity, features, logits,
                            importance, logsumexp, pool):
    # The gradients are laid out like the inputs (channels_last stays channels_last).
    return torch.empty_like(features), torch.empty_like(logits)


def register_attention_pool_op(fwd_op, bwd_op) -> None:
    """Fake kernels for both ops and the autograd formula of fwd_op."""
    torch.library.register_fake(fwd_op)(attention_pool_fwd_fake)
    torch.library.register_fake(bwd_op)(attention_pool_bwd_fake)
    register_attention_pool_autograd(fwd_op, bwd_op)


def register_attention_pool_autograd(fwd_op, bwd_op) -> None:
    """fwd_op(features, logits, pool, compute_diversity) -> (pooled, importance, diversity,
    logsumexp); bwd_op(grad_pooled, grad_importance, grad_diversity or None, features, logits,
    importance, logsumexp, pool) -> (grad_features, grad_logits). The log-sum-exp is internal
    (never returned to users), so its gradient is ignored."""

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
        grad_features, grad_logits = bwd_op(grad_pooled, grad_importance, grad_diversity,
                                            features, logits, importance, logsumexp, ctx.pool)
        return (grad_features if ctx.needs_input_grad[0] else None,
                grad_logits if ctx.needs_input_grad[1] else None, None, None)

    torch.library.register_autograd(fwd_op, backward, setup_context=setup_context)
