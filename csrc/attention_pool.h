// Host-side contract of the fused attention-pooling ops: argument checks and output allocation
// shared by the CPU and CUDA implementations (the schemas are in attention_pool_ops.cpp).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <tuple>

namespace fusedattn {

// Sizes of one call. Features are (B, C, N), logits (B, K, N), both with arbitrary strides.
struct PoolShape {
  int64_t B, C, K, N;
  bool mean_pool;
};

// Validates the forward op's arguments (TORCH_CHECK_VALUE / TORCH_CHECK_TYPE naming the argument
// and what was seen, so a direct op call with bad input raises ValueError/TypeError in Python).
PoolShape check_forward_args(const at::Tensor& features, const at::Tensor& logits,
                             c10::string_view pool);

// Validates the backward op's arguments against the forward's inputs and saved outputs.
PoolShape check_backward_args(const at::Tensor& grad_pooled, const at::Tensor& grad_importance,
                              const std::optional<at::Tensor>& grad_diversity,
                              const at::Tensor& features, const at::Tensor& logits,
                              const at::Tensor& importance, const at::Tensor& logsumexp,
                              c10::string_view pool);

// float32 for 16/32-bit inputs, float64 for float64: the dtype of importance, diversity and the
// saved statistics, and the accumulation type of every kernel.
at::ScalarType accumulate_dtype(at::ScalarType input_dtype);

// (pooled (B,K,C) in the features' dtype, importance (B,K), diversity (B,) or (0,) when not
// computed, logsumexp (B,K)), all contiguous, uninitialized.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> allocate_forward_outputs(
    const at::Tensor& features, const PoolShape& shape, bool compute_diversity);

// (grad_features, grad_logits) laid out like features and logits (channels_last stays
// channels_last), uninitialized.
std::tuple<at::Tensor, at::Tensor> allocate_backward_outputs(const at::Tensor& features,
                                                             const at::Tensor& logits);

}  // namespace fusedattn
