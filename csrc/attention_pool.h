// Host-side contract of the fused attention-pooling ops, shared by the CPU and CUDA
// implementations: argument checks and output allocation. Written against torch's stable ABI
// (torch/csrc/stable, TORCH_TARGET_VERSION 2.10), so one build of the extension loads into any
// torch from 2.10 on. The op schemas are in attention_pool_ops.cpp.
#pragma once

#include "attention_pool_params.h"

#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>

#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>

namespace fusedattn {

using Tensor = torch::stable::Tensor;
using ScalarType = torch::headeronly::ScalarType;

// Throws std::runtime_error("fusedattn: <message>"); Python sees a RuntimeError. (The public
// API validates first, with ValueError/TypeError; these guard direct calls of the ops.)
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream message;
  message << "fusedattn: ";
  (message << ... << args);
  throw std::runtime_error(message.str());
}
#define FUSEDATTN_CHECK(cond, ...) \
  do {                             \
    if (!(cond)) ::fusedattn::fail(__VA_ARGS__); \
  } while (0)

// "[2, 3, 4]"
std::string sizes_string(const Tensor& t);

// Sizes of one call. Features are (B, C, N), logits (B, K, N), both with arbitrary strides.
struct PoolShape {
  int64_t B, C, K, N;
  bool mean_pool;
};

PoolShape check_forward_args(const Tensor& features, const Tensor& logits,
                             const std::string& pool);

PoolShape check_backward_args(const Tensor& grad_pooled, const Tensor& grad_importance,
                              const std::optional<Tensor>& grad_diversity,
                              const Tensor& features, const Tensor& logits,
                              const Tensor& importance, const Tensor& logsumexp,
                              const std::string& pool);

// float32 for 16/32-bit inputs, float64 for float64: the dtype of importance, diversity and the
// saved statistics, and the accumulation type of every kernel.
ScalarType accumulate_dtype(ScalarType input_dtype);

// (pooled (B,K,C) in the features' dtype, importance (B,K), diversity (B,) or (0,) when not
// computed, logsumexp (B,K)), all contiguous, uninitialized, on the features' device.
std::tuple<Tensor, Tensor, Tensor, Tensor> allocate_forward_outputs(
    const Tensor& features, const PoolShape& shape, bool compute_diversity);

// (grad_features, grad_logits) laid out like features and logits (channels_last stays
// channels_last), uninitialized.
std::tuple<Tensor, Tensor> allocate_backward_outputs(const Tensor& features,
                                                     const Tensor& logits);

// The kernels' view of a forward call (splits left 0: the CUDA host sets them).
ForwardParams forward_params(const Tensor& features, const Tensor& logits, const PoolShape& shape,
                             const Tensor& pooled, const Tensor& importance,
                             const std::optional<Tensor>& diversity, const Tensor& logsumexp);

// The kernels' view of a backward call. The small per-sample inputs are made contiguous (the
// features never are); `inputs` keeps those copies alive as long as the params are used.
struct BackwardInputs {
  Tensor grad_pooled, grad_importance, grad_diversity, importance, logsumexp;
};
BackwardParams backward_params(const Tensor& grad_pooled, const Tensor& grad_importance,
                               const std::optional<Tensor>& grad_diversity,
                               const Tensor& features, const Tensor& logits,
                               const Tensor& importance, const Tensor& logsumexp,
                               const PoolShape& shape, const Tensor& grad_features,
                               const Tensor& grad_logits, BackwardInputs& inputs);

}  // namespace fusedattn
