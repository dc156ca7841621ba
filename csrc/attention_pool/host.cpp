#include "host.h"

#include <torch/csrc/stable/ops.h>

namespace fusedattn {
namespace attention_pool {

using torch::headeronly::toString;

Shape check_forward_args(const Tensor& features, const Tensor& logits, const std::string& pool) {
  const PixelRows f = pixel_rows(features, "features");
  const PixelRows a = pixel_rows(logits, "attn_logits");
  FUSEDATTN_CHECK(is_supported_dtype(features.scalar_type()),
                  "features must be float16, bfloat16, float32 or float64, got ",
                  toString(features.scalar_type()));
  check_dtype(logits, "attn_logits", features.scalar_type());
  check_same_device(logits, "attn_logits", features, "features");
  FUSEDATTN_CHECK(a.batch == f.batch, "batch mismatch: features ", sizes_string(features),
                  " vs attn_logits ", sizes_string(logits));
  const bool both_4d = features.dim() == 4 && logits.dim() == 4;
  FUSEDATTN_CHECK(a.pixels == f.pixels && (!both_4d || (features.size(2) == logits.size(2) &&
                                                        features.size(3) == logits.size(3))),
                  "spatial size mismatch: features ", sizes_string(features), " vs attn_logits ",
                  sizes_string(logits));
  FUSEDATTN_CHECK(a.rows > 0, "attn_logits must have K >= 1 maps, got shape ",
                  sizes_string(logits));
  FUSEDATTN_CHECK(f.pixels > 0, "the spatial size must be >= 1, got features ",
                  sizes_string(features));
  FUSEDATTN_CHECK(pool == "sum" || pool == "mean", "pool must be 'sum' or 'mean', got '", pool,
                  "'");
  return Shape{f.batch, f.rows, a.rows, f.pixels, pool == "mean"};
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

ForwardOutputs allocate_forward_outputs(const Tensor& features, const Shape& s,
                                        bool compute_diversity, bool with_logsumexp) {
  const ScalarType acc = accumulate_dtype(features.scalar_type());
  ForwardOutputs out{empty_on(features, {s.B, s.K, s.C}, features.scalar_type()),
                     empty_on(features, {s.B, s.K}, acc),
                     empty_on(features, {compute_diversity ? s.B : 0}, acc), std::nullopt};
  if (with_logsumexp) out.logsumexp = empty_on(features, {s.B, s.K}, acc);
  return out;
}

std::tuple<Tensor, Tensor> allocate_backward_outputs(const Tensor& features,
                                                     const Tensor& logits) {
  return {torch::stable::empty_like(features), torch::stable::empty_like(logits)};
}

ForwardParams forward_params(const Tensor& features, const Tensor& logits, const Shape& sh,
                             bool compute_diversity, const ForwardOutputs& out) {
  ForwardParams p{};
  p.features = features.const_data_ptr();
  p.logits = logits.const_data_ptr();
  p.pooled = out.pooled.mutable_data_ptr();
  p.importance = out.importance.mutable_data_ptr();
  p.logsumexp = out.logsumexp.has_value() ? out.logsumexp->mutable_data_ptr() : nullptr;
  p.diversity = compute_diversity ? out.diversity.mutable_data_ptr() : nullptr;
  const PixelRows f = pixel_rows(features, "features"), a = pixel_rows(logits, "attn_logits");
  p.sfb = f.stride_batch, p.sfc = f.stride_row, p.sfn = f.stride_pixel;
  p.sab = a.stride_batch, p.sak = a.stride_row, p.san = a.stride_pixel;
  p.B = sh.B, p.C = sh.C, p.K = sh.K, p.N = sh.N, p.mean_pool = sh.mean_pool;
  return p;
}

BackwardParams backward_params(const Tensor& grad_pooled, const Tensor& grad_importance,
                               const std::optional<Tensor>& grad_diversity,
                               const Tensor& features, const Tensor& logits,
                               const Tensor& importance, const Tensor& logsumexp,
                               const Shape& sh, const Tensor& grad_features,
                               const Tensor& grad_logits, BackwardInputs& in) {
  in.grad_pooled = as_contiguous(grad_pooled);
  in.grad_importance = as_contiguous(grad_importance);
  in.importance = as_contiguous(importance);
  in.logsumexp = as_contiguous(logsumexp);
  if (grad_diversity.has_value()) in.grad_diversity = as_contiguous(*grad_diversity);
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
  const PixelRows f = pixel_rows(features, "features"), a = pixel_rows(logits, "attn_logits");
  const PixelRows gf = pixel_rows(grad_features, "grad_features");
  const PixelRows ga = pixel_rows(grad_logits, "grad_logits");
  p.sfb = f.stride_batch, p.sfc = f.stride_row, p.sfn = f.stride_pixel;
  p.sab = a.stride_batch, p.sak = a.stride_row, p.san = a.stride_pixel;
  p.gfb = gf.stride_batch, p.gfc = gf.stride_row, p.gfn = gf.stride_pixel;
  p.gab = ga.stride_batch, p.gak = ga.stride_row, p.gan = ga.stride_pixel;
  p.B = sh.B, p.C = sh.C, p.K = sh.K, p.N = sh.N, p.mean_pool = sh.mean_pool;
  return p;
}

}  // namespace attention_pool
}  // namespace fusedattn
