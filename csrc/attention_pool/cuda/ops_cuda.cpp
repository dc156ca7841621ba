// Host side of the attention_pool CUDA ops (torch's stable ABI, like the CPU ops): argument
// checks and allocation (host.h, shared with the CPU ops), the device guard and the caller's
// current stream (so CUDA graphs and torch.compile capture the launches), and the dtype switch.
// The kernels are in forward.cu and backward.cu.
#include "../../common/cuda/host.h"
#include "../../common/library.h"
#include "../host.h"
#include "kernels.h"

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>

namespace fusedattn {
namespace attention_pool {
namespace cuda {
namespace {

using ::fusedattn::cuda::current_stream;
using ::fusedattn::cuda::DeviceGuard;
using ::fusedattn::cuda::kernel_dtype;

void check_cuda_shape(const Shape& sh) {
  FUSEDATTN_CHECK(sh.B <= INT32_MAX, "the cuda backend supports up to 2^31 - 1 samples, got B=",
                  sh.B);
}

int element_size(const Tensor& t) { return t.scalar_type() == ScalarType::Float ? 4 : 2; }

FeatureLoad feature_load(const Tensor& features, const Shape& sh) {
  const PixelRows f = pixel_rows(features, "features");
  return choose_feature_load(element_size(features),
                             reinterpret_cast<uintptr_t>(features.const_data_ptr()),
                             f.stride_batch, f.stride_row, f.stride_pixel, sh.C, sh.N);
}

int sm_count(const Tensor& t) { return device_sm_count(t.get_device_index()); }

// Scratch of `count` elements (at least one) of `dtype`, on the tensor's device.
Tensor scratch(const Tensor& like, size_t count, ScalarType dtype) {
  return empty_on(like, {static_cast<int64_t>(count > 0 ? count : 1)}, dtype);
}

ForwardOutputs forward(const Tensor& features_in, const Tensor& logits_in,
                       const std::string& pool, bool compute_diversity, bool with_logsumexp) {
  // 4-D inputs whose pixels do not merge into one axis are read from a contiguous copy.
  const Tensor features = as_mergeable(features_in), logits = as_mergeable(logits_in);
  const Shape sh = check_forward_args(features, logits, pool);
  check_cuda_shape(sh);
  const DType dtype = kernel_dtype(features);
  const DeviceGuard guard(features);
  const ForwardOutputs out =
      allocate_forward_outputs(features, sh, compute_diversity, with_logsumexp);
  if (sh.B == 0) return out;
  const ForwardParams p = forward_params(features, logits, sh, compute_diversity, out);
  const ForwardPlan plan = plan_forward(sh.B, sh.C, sh.K, sh.N, element_size(features),
                                        feature_load(features, sh), sm_count(features));
  const Tensor w = scratch(features, plan.w_scratch_elements, features.scalar_type());
  const Tensor partial = scratch(features, plan.partial_floats, ScalarType::Float);
  launch_forward(p, plan, dtype, {w.mutable_data_ptr(), partial.mutable_data_ptr<float>()},
                 current_stream(features));
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> attention_pool_fwd_cuda(
    const Tensor& features, const Tensor& logits, const std::string& pool,
    bool compute_diversity) {
  ForwardOutputs out = forward(features, logits, pool, compute_diversity, true);
  return {out.pooled, out.importance, out.diversity, *out.logsumexp};
}

std::tuple<Tensor, Tensor, Tensor> attention_pool_infer_cuda(
    const Tensor& features, const Tensor& logits, const std::string& pool,
    bool compute_diversity) {
  ForwardOutputs out = forward(features, logits, pool, compute_diversity, false);
  return {out.pooled, out.importance, out.diversity};
}

std::tuple<Tensor, Tensor> attention_pool_bwd_cuda(
    const Tensor& grad_pooled, const Tensor& grad_importance,
    const std::optional<Tensor>& grad_diversity, const Tensor& features_in, const Tensor& logits_in,
    const Tensor& importance, const Tensor& logsumexp, const std::string& pool) {
  // 4-D inputs whose pixels do not merge into one axis are read from a contiguous copy.
  const Tensor features = as_mergeable(features_in), logits = as_mergeable(logits_in);
  const Shape sh = check_backward_args(grad_pooled, grad_importance, grad_diversity, features,
                                           logits, importance, logsumexp, pool);
  check_cuda_shape(sh);
  const DType dtype = kernel_dtype(features);
  const DeviceGuard guard(features);
  auto [grad_features, grad_logits] = allocate_backward_outputs(features, logits);
  if (sh.B == 0) return {grad_features, grad_logits};
  BackwardInputs inputs;
  const BackwardParams p =
      backward_params(grad_pooled, grad_importance, grad_diversity, features, logits, importance,
                      logsumexp, sh, grad_features, grad_logits, inputs);
  const PixelRows g = pixel_rows(grad_features, "grad_features");
  const FeatureLoad load = choose_backward_load(
      feature_load(features, sh), element_size(features),
      reinterpret_cast<uintptr_t>(grad_features.const_data_ptr()), g.stride_batch, g.stride_row,
      g.stride_pixel, sh.C, sh.N);
  const BackwardPlan plan =
      plan_backward(sh.B, sh.C, sh.K, sh.N, element_size(features), load,
                    reinterpret_cast<uintptr_t>(p.grad_pooled), sm_count(features));
  const Tensor gv = scratch(features, plan.gv_scratch_elements, features.scalar_type());
  const Tensor w = scratch(features, plan.w_scratch_elements, features.scalar_type());
  const Tensor gw = scratch(features, plan.gw_floats, ScalarType::Float);
  const Tensor sums = scratch(features, plan.sums_floats, ScalarType::Float);
  launch_backward(p, plan, dtype,
                  {gv.mutable_data_ptr(), w.mutable_data_ptr(), gw.mutable_data_ptr<float>(),
                   sums.mutable_data_ptr<float>()},
                  current_stream(features));
  return {grad_features, grad_logits};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(FUSEDATTN_LIBRARY, FUSEDATTN_CUDA_DISPATCH_KEY, m) {
  m.impl("attention_pool_fwd", TORCH_BOX(&attention_pool_fwd_cuda));
  m.impl("attention_pool_infer", TORCH_BOX(&attention_pool_infer_cuda));
  m.impl("attention_pool_bwd", TORCH_BOX(&attention_pool_bwd_cuda));
}

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
