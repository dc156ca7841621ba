// Host side of the CUDA ops (torch's stable ABI, like the CPU ops): argument checks and
// allocation (shared with the CPU ops), the device guard and the caller's current stream (so
// CUDA graphs and torch.compile capture the launches), and the dtype switch. The kernels are in
// attention_pool_{fwd,bwd}.cu.
#include "../attention_pool.h"
#include "attention_pool_cuda.h"

#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/c/shim.h>
#include <torch/csrc/stable/library.h>

namespace fusedattn {
namespace cuda {
namespace {

DType kernel_dtype(const Tensor& t) {
  switch (t.scalar_type()) {
    case ScalarType::Half: return DType::Half;
    case ScalarType::BFloat16: return DType::BFloat16;
    case ScalarType::Float: return DType::Float;
    default:
      fail("the cuda backend supports float16, bfloat16 and float32, got ",
           torch::headeronly::toString(t.scalar_type()));
  }
}

void check_cuda_shape(const PoolShape& sh) {
  FUSEDATTN_CHECK(sh.K <= kMaxMaps, "the cuda backend supports up to ", kMaxMaps,
                  " attention maps, got K=", sh.K, " (use backend='triton' or 'reference')");
}

// The caller's current stream on the tensor's device: launches on it are ordered with the
// rest of the caller's work and captured by CUDA graphs.
cudaStream_t current_stream(const Tensor& t) {
  void* stream = nullptr;
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(t.get_device_index(), &stream));
  return static_cast<cudaStream_t>(stream);
}

void check_launch() {
  const cudaError_t err = cudaGetLastError();
  FUSEDATTN_CHECK(err == cudaSuccess, "CUDA kernel launch failed: ", cudaGetErrorString(err));
}

std::tuple<Tensor, Tensor, Tensor, Tensor> attention_pool_fwd_cuda(
    const Tensor& features, const Tensor& logits, const std::string& pool,
    bool compute_diversity) {
  const PoolShape sh = check_forward_args(features, logits, pool);
  check_cuda_shape(sh);
  const DType dtype = kernel_dtype(features);
  const torch::stable::accelerator::DeviceGuard guard(features.get_device_index());
  auto [pooled, importance, diversity, logsumexp] =
      allocate_forward_outputs(features, sh, compute_diversity);
  if (sh.B == 0) return {pooled, importance, diversity, logsumexp};
  ForwardParams p{};
  p.features = features.const_data_ptr();
  p.logits = logits.const_data_ptr();
  p.pooled = pooled.mutable_data_ptr();
  p.importance = importance.mutable_data_ptr<float>();
  p.logsumexp = logsumexp.mutable_data_ptr<float>();
  p.diversity = compute_diversity ? diversity.mutable_data_ptr<float>() : nullptr;
  p.sfb = features.stride(0), p.sfc = features.stride(1), p.sfn = features.stride(2);
  p.sab = logits.stride(0), p.sak = logits.stride(1), p.san = logits.stride(2);
  p.B = sh.B, p.C = sh.C, p.K = sh.K, p.N = sh.N;
  p.alpha = sh.mean_pool ? 1.f / static_cast<float>(sh.N) : 1.f;
  p.splits = num_splits(sh.B, sh.C, features.get_device_index());
  launch_forward(p, dtype, current_stream(features));
  check_launch();
  return {pooled, importance, diversity, logsumexp};
}

std::tuple<Tensor, Tensor> attention_pool_bwd_cuda(
    const Tensor& grad_pooled, const Tensor& grad_importance,
    const std::optional<Tensor>& grad_diversity, const Tensor& features, const Tensor& logits,
    const Tensor& importance, const Tensor& logsumexp, const std::string& pool) {
  const PoolShape sh = check_backward_args(grad_pooled, grad_importance, grad_diversity, features,
                                           logits, importance, logsumexp, pool);
  check_cuda_shape(sh);
  const DType dtype = kernel_dtype(features);
  const torch::stable::accelerator::DeviceGuard guard(features.get_device_index());
  auto [grad_features, grad_logits] = allocate_backward_outputs(features, logits);
  if (sh.B == 0) return {grad_features, grad_logits};
  // The small per-sample inputs are made contiguous; the features never are.
  using torch::stable::contiguous;
  const Tensor gv = contiguous(grad_pooled);
  const Tensor gs = contiguous(grad_importance);
  const Tensor s = contiguous(importance);
  const Tensor lse = contiguous(logsumexp);
  Tensor gd;  // undefined unless the loss used the diversity term
  if (grad_diversity.has_value()) gd = contiguous(*grad_diversity);
  const int splits = num_splits(sh.B, sh.C, features.get_device_index());
  // The only [B, *, K, N] intermediate: each channel split's share of gw, in float32.
  Tensor gw_splits = torch::stable::new_empty(s, {sh.B, splits, sh.K, sh.N});
  BackwardParams p{};
  p.grad_pooled = gv.const_data_ptr();
  p.grad_importance = gs.const_data_ptr<float>();
  p.grad_diversity = gd.defined() ? gd.const_data_ptr<float>() : nullptr;
  p.features = features.const_data_ptr();
  p.logits = logits.const_data_ptr();
  p.importance = s.const_data_ptr<float>();
  p.logsumexp = lse.const_data_ptr<float>();
  p.grad_features = grad_features.mutable_data_ptr();
  p.grad_logits = grad_logits.mutable_data_ptr();
  p.gw_splits = gw_splits.mutable_data_ptr<float>();
  p.sfb = features.stride(0), p.sfc = features.stride(1), p.sfn = features.stride(2);
  p.sab = logits.stride(0), p.sak = logits.stride(1), p.san = logits.stride(2);
  p.gfb = grad_features.stride(0), p.gfc = grad_features.stride(1), p.gfn = grad_features.stride(2);
  p.gab = grad_logits.stride(0), p.gak = grad_logits.stride(1), p.gan = grad_logits.stride(2);
  p.B = sh.B, p.C = sh.C, p.K = sh.K, p.N = sh.N;
  p.alpha = sh.mean_pool ? 1.f / static_cast<float>(sh.N) : 1.f;
  p.splits = splits;
  launch_backward(p, dtype, current_stream(features));
  check_launch();
  return {grad_features, grad_logits};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fusedattn, CUDA, m) {
  m.impl("attention_pool_fwd", TORCH_BOX(&attention_pool_fwd_cuda));
  m.impl("attention_pool_bwd", TORCH_BOX(&attention_pool_bwd_cuda));
}

}  // namespace cuda
}  // namespace fusedattn
