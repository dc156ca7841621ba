// Host-side contract of the attention_pool ops, shared by their CPU and CUDA implementations:
// argument checks, output allocation and the kernels' params. Written against torch's stable
// ABI (torch/csrc/stable, TORCH_TARGET_VERSION 2.10), so one build of the extension loads into
// any torch from 2.10 on. The op schemas are in ops.cpp; the math in docs/attention_pool.md.
#pragma once

#include "../common/checks.h"
#include "params.h"

#include <optional>
#include <string>
#include <tuple>

namespace fusedattn {
namespace attention_pool {

// Sizes of one call. Features are (B, C, N) or (B, C, H, W), logits (B, K, N) or (B, K, H, W)
// (H and W mergeable into one pixel axis: common/checks.h's pixel_rows), any strides.
struct Shape {
  int64_t B, C, K, N;
  bool mean_pool;
};

Shape check_forward_args(const Tensor& features, const Tensor& logits, const std::string& pool);

Shape check_backward_args(const Tensor& grad_pooled, const Tensor& grad_importance,
                          const std::optional<Tensor>& grad_diversity, const Tensor& features,
                          const Tensor& logits, const Tensor& importance,
                          const Tensor& logsumexp, const std::string& pool);

// What a forward returns: pooled (B,K,C) in the features' dtype, importance (B,K), diversity
// (B,) or (0,) when not computed, and the logsumexp (B,K) a backward needs (none for
// attention_pool_infer); all contiguous, on the features' device.
struct ForwardOutputs {
  Tensor pooled, importance, diversity;
  std::optional<Tensor> logsumexp;
};

// The outputs, uninitialized.
ForwardOutputs allocate_forward_outputs(const Tensor& features, const Shape& shape,
                                        bool compute_diversity, bool with_logsumexp);

// (grad_features, grad_logits) laid out like features and logits (channels_last stays
// channels_last), uninitialized.
std::tuple<Tensor, Tensor> allocate_backward_outputs(const Tensor& features, const Tensor& logits);

// The kernels' view of a forward call (splits left 0: the CUDA host sets them).
ForwardParams forward_params(const Tensor& features, const Tensor& logits, const Shape& shape,
                             bool compute_diversity, const ForwardOutputs& outputs);

// The kernels' view of a backward call. The small per-sample inputs are made contiguous (the
// features never are); `inputs` keeps those copies alive as long as the params are used.
struct BackwardInputs {
  Tensor grad_pooled, grad_importance, grad_diversity, importance, logsumexp;
};
BackwardParams backward_params(const Tensor& grad_pooled, const Tensor& grad_importance,
                               const std::optional<Tensor>& grad_diversity,
                               const Tensor& features, const Tensor& logits,
                               const Tensor& importance, const Tensor& logsumexp,
                               const Shape& shape, const Tensor& grad_features,
                               const Tensor& grad_logits, BackwardInputs& inputs);

}  // namespace attention_pool
}  // namespace fusedattn
