#include "host.h"

#include <torch/csrc/stable/ops.h>

namespace fusedattn {
namespace attention_pool {

using torch::headeronly::toString;

Shape check_forward_args(const Tensor& features, const Tensor& logits,
                             const std::string& pool) {
  FUSEDATTN_CHECK(features.dim() == 3, "features must be 3-D (B, C, N), got shape ",
                  sizes_string(features));
  FUSEDATTN_CHECK(logits.dim() == 3, "attn_logits must be 3-D (B, K, N), got shape ",
                  sizes_string(logits));
  FUSEDATTN_CHECK(is_supported_dtype(features.scalar_type()),
                  "features must be float16, bfloat16, float32 or float64, got ",
                  toString(features.scalar_type()));
  check_dtype(logits, "attn_logits", features.scalar_type());
  check_same_device(logits, "attn_logits", features, "features");
  const int64_t B = features.size(0), C = features.size(1), N = features.size(2);
  FUSEDATTN_CHECK(logits.size(0) == B, "batch mismatch: features ", sizes_string(features),
                  " vs attn_logits ", sizes_string(logits));
  FUSEDATTN_CHECK(logits.size(2) == N, "spatial size mismatch: features ",
                  sizes_string(features), " vs attn_logits ", sizes_string(logits));
  FUSEDATTN_CHECK(logits.size(1) > 0, "attn_logits must have K >= 1 maps, got shape ",
                  sizes_string(logits));
  FUSEDATTN_CHECK(N > 0, "the spatial size must be >= 1, got features ", sizes_string(features));
  FUSEDATTN_CHECK(pool == "sum" || pool == "mean", "pool must be 'sum' or 'mean', got '", pool,
                  "'");
  return Shape{B, C, logits.size(1), N, pool == "mean"};
}

Shape check_backward_args(const Tensor& grad_pooled, const Tensor& grad_importance,
                              const std::optional<Tensor>& grad_diversity,
                              const Tensor& features, const Tensor& logits,
                              const Tensor& importance, const Tensor& logsumexp,
                              const std::string& pool) {
  const Shape s = check_forward_args(features, logits, pool);
  const ScalarType acc = accumulate_dtype(features.scalar_type());
  check_shape(grad_pooled, "grad_pooled", {s.B, s.K, s.C});
  check_dtype(grad_pooled, "grad_pooled", features.scalar_type());
  check_same_device(grad_pooled, "grad_pooled", features, "features");
  auto check_statistic = [&](const Tensor& t, const char* name) {
    check_shape(t, name, {s.B, s.K});
    check_dtype(t, name, acc);
    check_same_device(t, name, features, "features");
  };
  check_statistic(grad_importance, "grad_importance");
  check_statistic(importance, "importance");
  check_statistic(logsumexp, "logsumexp");
  if (grad_diversity.has_value()) {
    check_shape(*grad_diversity, "grad_diversity", {s.B});
    check_dtype(*grad_diversity, "grad_diversity", acc);
    check_same_device(*grad_diversity, "grad_diversity", features, "features");
  }
  return s;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> allocate_forward_outputs(
    const Tensor& features, const Shape& s, bool compute_diversity) {
  const ScalarType acc = accumulate_dtype(features.scalar_type());
  using torch::stable::new_empty;
  return {new_empty(features, {s.B, s.K, s.C}), new_empty(features, {s.B, s.K}, acc),
          new_empty(features, {compute_diversity ? s.B : 0}, acc),
          new_empty(features, {s.B, s.K}, acc)};
}

std::tuple<Tensor, Tensor> allocate_backward_outputs(const Tensor& features,
                                                     const Tensor& logits) {
  return {torch::stable::empty_like(features), torch::stable::empty_like(logits)};
}

ForwardParams forward_params(const Tensor& features, const Tensor& logits, const Shape& sh,
                             const Tensor& pooled, const Tensor& importance,
                             const std::optional<Tensor>& diversity, const Tensor& logsumexp) {
  ForwardParams p{};
  p.features = features.const_data_ptr();
  p.logits = logits.const_data_ptr();
  p.pooled = pooled.mutable_data_ptr();
  p.importance = importance.mutable_data_ptr();
  p.logsumexp = logsumexp.mutable_data_ptr();
  p.diversity = diversity.has_value() ? diversity->mutable_data_ptr() : nullptr;
  p.sfb = features.stride(0), p.sfc = features.stride(1), p.sfn = features.stride(2);
  p.sab = logits.stride(0), p.sak = logits.stride(1), p.san = logits.stride(2);
  p.B = sh.B, p.C = sh.C, p.K = sh.K, p.N = sh.N, p.mean_pool = sh.mean_pool;
  return p;
}

BackwardParams backward_params(const Tensor& grad_pooled, const Tensor& grad_importance,
                               const std::optional<Tensor>& grad_diversity,
                               const Tensor& features, const Tensor& logits,
                               const Tensor& importance, const Tensor& logsumexp,
                               const Shape& sh, const Tensor& grad_features,
                               const Tensor& grad_logits, BackwardInputs& in) {
  using torch::stable::contiguous;
  in.grad_pooled = contiguous(grad_pooled);
  in.grad_importance = contiguous(grad_importance);
  in.importance = contiguous(importance);
  in.logsumexp = contiguous(logsumexp);
  if (grad_diversity.has_value()) in.grad_diversity = contiguous(*grad_diversity);
  BackwardParams p{};
  p.grad_pooled = in.grad_pooled.const_data_ptr();
  p.grad_importance = in.grad_importance.const_data_ptr();
  p.grad_diversity = in.grad_diversity.defined() ? in.grad_diversity.const_data_ptr() : nullptr;
  p.features = features.const_data_ptr();
  p.logits = logits.const_data_ptr();
  p.importance = in.importance.const_data_ptr();
  p.logsumexp = in.logsumexp.const_data_ptr();
  p.grad_features = grad_features.mutable_data_ptr();
  p.grad_logits = grad_logits.mutable_data_ptr();
  p.sfb = features.stride(0), p.sfc = features.stride(1), p.sfn = features.stride(2);
  p.sab = logits.stride(0), p.sak = logits.stride(1), p.san = logits.stride(2);
  p.gfb = grad_features.stride(0), p.gfc = grad_features.stride(1), p.gfn = grad_features.stride(2);
  p.gab = grad_logits.stride(0), p.gak = grad_logits.stride(1), p.gan = grad_logits.stride(2);
  p.B = sh.B, p.C = sh.C, p.K = sh.K, p.N = sh.N, p.mean_pool = sh.mean_pool;
  return p;
}

}  // namespace attention_pool
}  // namespace fusedattn
