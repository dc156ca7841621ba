// Host side of the CUDA ops: argument checks and allocation (shared with the CPU ops), the
// device guard and current stream (so CUDA graphs and torch.compile capture the launches), and
// the dtype switch. The kernels are in attention_pool_{fwd,bwd}.cu.
#include "../attention_pool.h"
#include "attention_pool_cuda.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

namespace fusedattn {
namespace cuda {
namespace {

DType kernel_dtype(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kHalf: return DType::Half;
    case at::kBFloat16: return DType::BFloat16;
    case at::kFloat: return DType::Float;
    default:
      TORCH_CHECK_TYPE(false, "fusedattn: the cuda backend supports float16, bfloat16 and "
                       "float32, got ", t.scalar_type());
  }
}

void check_cuda_shape(const PoolShape& sh) {
  TORCH_CHECK_VALUE(sh.K <= kMaxMaps, "fusedattn: the cuda backend supports up to ", kMaxMaps,
                    " attention maps, got K=", sh.K, " (use backend='triton' or 'reference')");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> attention_pool_fwd_cuda(
    const at::Tensor& features, const at::Tensor& logits, c10::string_view pool,
    bool compute_diversity) {
  const PoolShape sh = check_forward_args(features, logits, pool);
  check_cuda_shape(sh);
  const DType dtype = kernel_dtype(features);
  const c10::cuda::CUDAGuard guard(features.device());
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
  p.splits = num_splits(sh.B, sh.C, features.get_device());
  launch_forward(p, dtype, c10::cuda::getCurrentCUDAStream(features.get_device()).stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {pooled, importance, diversity, logsumexp};
}

std::tuple<at::Tensor, at::Tensor> attention_pool_bwd_cuda(
    const at::Tensor& grad_pooled, const at::Tensor& grad_importance,
    const std::optional<at::Tensor>& grad_diversity, const at::Tensor& features,
    const at::Tensor& logits, const at::Tensor& importance, const at::Tensor& logsumexp,
    c10::string_view pool) {
  const PoolShape sh = check_backward_args(grad_pooled, grad_importance, grad_diversity, features,
                                           logits, importance, logsumexp, pool);
  check_cuda_shape(sh);
  const DType dtype = kernel_dtype(features);
  const c10::cuda::CUDAGuard guard(features.device());
  auto [grad_features, grad_logits] = allocate_backward_outputs(features, logits);
  if (sh.B == 0) return {grad_features, grad_logits};
  // The small per-sample inputs are made contiguous; the features never are.
  const at::Tensor gv = grad_pooled.contiguous();
  const at::Tensor gs = grad_importance.contiguous();
  const at::Tensor s = importance.contiguous();
  const at::Tensor lse = logsumexp.contiguous();
  const at::Tensor gd = grad_diversity.has_value() ? grad_diversity->contiguous() : at::Tensor();
  const int splits = num_splits(sh.B, sh.C, features.get_device());
  // The only [B, *, K, N] intermediate: each channel split's share of gw, in float32.
  at::Tensor gw_splits = at::empty({sh.B, splits, sh.K, sh.N}, s.options());
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
  launch_backward(p, dtype, c10::cuda::getCurrentCUDAStream(features.get_device()).stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {grad_features, grad_logits};
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedattn, CUDA, m) {
  m.impl("attention_pool_fwd", &attention_pool_fwd_cuda);
  m.impl("attention_pool_bwd", &attention_pool_bwd_cuda);
}

}  // namespace cuda
}  // namespace fusedattn
