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
  FUSEDATTN_CHECK(sh.K <= kMaxMaps, "the cuda backend supports up to ", kMaxMaps,
                  " attention maps, got K=", sh.K, " (use backend='triton' or 'reference')");
  FUSEDATTN_CHECK(sh.B <= INT32_MAX, "the cuda backend supports up to 2^31 - 1 samples, got B=",
                  sh.B);
}

// The backward's gw_splits scratch holds splits x (B x K x N) floats: as many splits as fit in
// 64 MB, and at least 8 (a bound on the scratch for huge K x N, not on parallelism at the
// usual sizes: B=1, K=8, N=400 fits 5000 splits).
int64_t max_backward_splits(const Shape& sh) {
  const int64_t gw_bytes = sh.B * sh.K * sh.N * static_cast<int64_t>(sizeof(float));
  const int64_t fit = (int64_t(64) << 20) / (gw_bytes > 0 ? gw_bytes : 1);
  return fit > 8 ? fit : 8;
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
  ForwardParams p = forward_params(features, logits, sh, compute_diversity, out);
  p.splits = num_splits(sh.B, sh.C, features.get_device_index(), INT32_MAX);
  launch_forward(p, dtype, current_stream(features));
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
  BackwardParams p =
      backward_params(grad_pooled, grad_importance, grad_diversity, features, logits, importance,
                      logsumexp, sh, grad_features, grad_logits, inputs);
  p.splits = num_splits(sh.B, sh.C, features.get_device_index(), max_backward_splits(sh));
  // The only [B, *, K, N] intermediate: each channel split's share of gw, in float32.
  Tensor gw_splits = torch::stable::new_empty(inputs.importance, {sh.B, p.splits, sh.K, sh.N});
  p.gw_splits = gw_splits.mutable_data_ptr<float>();
  launch_backward(p, dtype, current_stream(features));
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
