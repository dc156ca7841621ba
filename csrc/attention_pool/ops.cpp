// The attention_pool op schemas, shared by the CPU and CUDA implementations (one
// STABLE_TORCH_LIBRARY_IMPL each). Fake kernels and autograd are registered from Python
// (fusedattn/attention_pool/autograd.py), as torch.library recommends, so torch.compile sees
// plain ops. The math: docs/attention_pool.md.
#include <torch/csrc/stable/library.h>

#include "../common/library.h"

STABLE_TORCH_LIBRARY_FRAGMENT(FUSEDATTN_LIBRARY, m) {
  // features (B, C, N) or (B, C, H, W), logits (B, K, N) or (B, K, H, W), any strides that let
  // H and W merge into one pixel axis (NCHW, channels_last, sliced channels: no copy). Returns
  // pooled (B, K, C) in the features' dtype; importance (B, K), diversity (B,) ((0,) if not computed) and the per-(b, k)
  // log-sum-exp of the logits that the backward needs, in float32 (float64 for float64 inputs).
  m.def(
      "attention_pool_fwd(Tensor features, Tensor logits, str pool, bool compute_diversity)"
      " -> (Tensor pooled, Tensor importance, Tensor diversity, Tensor logsumexp)");
  // The forward without what only a backward needs (no log-sum-exp): for calls that record no
  // autograd graph, one output fewer to allocate.
  m.def(
      "attention_pool_infer(Tensor features, Tensor logits, str pool, bool compute_diversity)"
      " -> (Tensor pooled, Tensor importance, Tensor diversity)");
  // One pass over the features: grad_features and grad_logits, shaped and laid out like
  // features and logits.
  // grad_diversity None means the loss did not use the diversity term.
  m.def(
      "attention_pool_bwd(Tensor grad_pooled, Tensor grad_importance, Tensor? grad_diversity,"
      " Tensor features, Tensor logits, Tensor importance, Tensor logsumexp, str pool)"
      " -> (Tensor grad_features, Tensor grad_logits)");
}
