#include "attention_pool.h"

#include <ATen/ATen.h>

namespace fusedattn {
namespace {

bool is_supported_dtype(at::ScalarType t) {
  return t == at::kHalf || t == at::kBFloat16 || t == at::kFloat || t == at::kDouble;
}

void check_shape(const at::Tensor& t, const char* name, at::IntArrayRef expected) {
  TORCH_CHECK_VALUE(t.sizes() == expected, "fusedattn: ", name, " must have shape ", expected,
                    ", got ", t.sizes());
}

void check_dtype(const at::Tensor& t, const char* name, at::ScalarType expected) {
  TORCH_CHECK_TYPE(t.scalar_type() == expected, "fusedattn: ", name, " must be ", expected,
                   ", got ", t.scalar_type());
}

void check_device(const at::Tensor& t, const char* name, const at::Tensor& features) {
  TORCH_CHECK_VALUE(t.device() == features.device(), "fusedattn: ", name,
                    " must be on the features' device ", features.device(), ", got ", t.device());
}

}  // namespace

at::ScalarType accumulate_dtype(at::ScalarType input_dtype) {
  return input_dtype == at::kDouble ? at::kDouble : at::kFloat;
}

PoolShape check_forward_args(const at::Tensor& features, const at::Tensor& logits,
                             c10::string_view pool) {
  TORCH_CHECK_VALUE(features.dim() == 3, "fusedattn: features must be 3-D (B, C, N), got shape ",
                    features.sizes());
  TORCH_CHECK_VALUE(logits.dim() == 3, "fusedattn: attn_logits must be 3-D (B, K, N), got shape ",
                    logits.sizes());
  TORCH_CHECK_TYPE(is_supported_dtype(features.scalar_type()),
                   "fusedattn: features must be float16, bfloat16, float32 or float64, got ",
                   features.scalar_type());
  check_dtype(logits, "attn_logits", features.scalar_type());
  check_device(logits, "attn_logits", features);
  const int64_t B = features.size(0), C = features.size(1), N = features.size(2);
  TORCH_CHECK_VALUE(logits.size(0) == B, "fusedattn: batch mismatch: features ",
                    features.sizes(), " vs attn_logits ", logits.sizes());
  TORCH_CHECK_VALUE(logits.size(2) == N, "fusedattn: spatial size mismatch: features ",
                    features.sizes(), " vs attn_logits ", logits.sizes());
  TORCH_CHECK_VALUE(logits.size(1) > 0, "fusedattn: attn_logits must have K >= 1 maps, got shape ",
                    logits.sizes());
  TORCH_CHECK_VALUE(N > 0, "fusedattn: the spatial size must be >= 1, got features ",
                    features.sizes());
  TORCH_CHECK_VALUE(pool == "sum" || pool == "mean",
                    "fusedattn: pool must be 'sum' or 'mean', got '", pool, "'");
  return PoolShape{B, C, logits.size(1), N, pool == "mean"};
}

PoolShape check_backward_args(const at::Tensor& grad_pooled, const at::Tensor& grad_importance,
                              const std::optional<at::Tensor>& grad_diversity,
                              const at::Tensor& features, const at::Tensor& logits,
                              const at::Tensor& importance, const at::Tensor& logsumexp,
                              c10::string_view pool) {
  const PoolShape s = check_forward_args(features, logits, pool);
  const at::ScalarType acc = accumulate_dtype(features.scalar_type());
  check_shape(grad_pooled, "grad_pooled", {s.B, s.K, s.C});
  check_dtype(grad_pooled, "grad_pooled", features.scalar_type());
  check_device(grad_pooled, "grad_pooled", features);
  auto check_statistic = [&](const at::Tensor& t, const char* name) {
    check_shape(t, name, {s.B, s.K});
    check_dtype(t, name, acc);
    check_device(t, name, features);
  };
  check_statistic(grad_importance, "grad_importance");
  check_statistic(importance, "importance");
  check_statistic(logsumexp, "logsumexp");
  if (grad_diversity.has_value()) {
    check_shape(*grad_diversity, "grad_diversity", {s.B});
    check_dtype(*grad_diversity, "grad_diversity", acc);
    check_device(*grad_diversity, "grad_diversity", features);
  }
  return s;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> allocate_forward_outputs(
    const at::Tensor& features, const PoolShape& s, bool compute_diversity) {
  const auto acc = features.options().dtype(accumulate_dtype(features.scalar_type()));
  return {at::empty({s.B, s.K, s.C}, features.options()), at::empty({s.B, s.K}, acc),
          at::empty({compute_diversity ? s.B : 0}, acc), at::empty({s.B, s.K}, acc)};
}

std::tuple<at::Tensor, at::Tensor> allocate_backward_outputs(const at::Tensor& features,
                                                             const at::Tensor& logits) {
  return {at::empty_like(features), at::empty_like(logits)};
}

}  // namespace fusedattn
