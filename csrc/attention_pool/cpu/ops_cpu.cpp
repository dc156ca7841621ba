// Host side of the attention_pool CPU ops: argument checks and allocation (host.h, shared with
// the CUDA ops), dtype and instruction-set dispatch, and the parallel loop over samples. The
// kernels themselves are in kernels_impl.h.
#include "../../common/cpu/host.h"
#include "../../common/library.h"
#include "../host.h"
#include "kernels.h"

#include <torch/csrc/stable/library.h>

namespace fusedattn {
namespace attention_pool {
namespace cpu {
namespace {

using ::fusedattn::cpu::Isa;

// The forward and backward kernels compiled for an instruction set.
template <typename scalar_t>
struct Kernels {
  void (*forward)(const ForwardParams&, int64_t, int64_t, void*);
  void (*backward)(const BackwardParams&, int64_t, int64_t, void*);
};

template <typename scalar_t>
Kernels<scalar_t> kernels_for(Isa isa) {
  switch (isa) {
#if defined(__x86_64__) || defined(_M_X64)
    case Isa::Avx512: return {&isa_avx512::forward<scalar_t>, &isa_avx512::backward<scalar_t>};
    case Isa::Avx2: return {&isa_avx2::forward<scalar_t>, &isa_avx2::backward<scalar_t>};
#endif
    default: return {&isa_default::forward<scalar_t>, &isa_default::backward<scalar_t>};
  }
}

ForwardOutputs forward(const Tensor& features_in, const Tensor& logits_in,
                       const std::string& pool, bool compute_diversity, bool with_logsumexp) {
  // 4-D inputs whose pixels do not merge into one axis are read from a contiguous copy.
  const Tensor features = as_mergeable(features_in), logits = as_mergeable(logits_in);
  const Shape sh = check_forward_args(features, logits, pool);
  const ForwardOutputs out =
      allocate_forward_outputs(features, sh, compute_diversity, with_logsumexp);
  const ForwardParams p = forward_params(features, logits, sh, compute_diversity, out);
  const Isa isa = ::fusedattn::cpu::pick_isa();
  ::fusedattn::cpu::dispatch_dtype(features.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    ::fusedattn::cpu::parallel_over_batch(
        p, sh.B, sh.C * sh.N * sh.K,
        forward_workspace_bytes(p, accumulate_size(features.scalar_type())),
        kernels_for<scalar_t>(isa).forward);
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> attention_pool_fwd_cpu(
    const Tensor& features, const Tensor& logits, const std::string& pool,
    bool compute_diversity) {
  ForwardOutputs out = forward(features, logits, pool, compute_diversity, true);
  return {out.pooled, out.importance, out.diversity, *out.logsumexp};
}

std::tuple<Tensor, Tensor, Tensor> attention_pool_infer_cpu(
    const Tensor& features, const Tensor& logits, const std::string& pool,
    bool compute_diversity) {
  ForwardOutputs out = forward(features, logits, pool, compute_diversity, false);
  return {out.pooled, out.importance, out.diversity};
}

std::tuple<Tensor, Tensor> attention_pool_bwd_cpu(
    const Tensor& grad_pooled, const Tensor& grad_importance,
    const std::optional<Tensor>& grad_diversity, const Tensor& features_in, const Tensor& logits_in,
    const Tensor& importance, const Tensor& logsumexp, const std::string& pool) {
  // 4-D inputs whose pixels do not merge into one axis are read from a contiguous copy.
  const Tensor features = as_mergeable(features_in), logits = as_mergeable(logits_in);
  const Shape sh = check_backward_args(grad_pooled, grad_importance, grad_diversity, features,
                                       logits, importance, logsumexp, pool);
  auto [grad_features, grad_logits] = allocate_backward_outputs(features, logits);
  ::fusedattn::cpu::advise_huge_pages(grad_features);
  BackwardInputs inputs;
  const BackwardParams p =
      backward_params(grad_pooled, grad_importance, grad_diversity, features, logits, importance,
                      logsumexp, sh, grad_features, grad_logits, inputs);
  const Isa isa = ::fusedattn::cpu::pick_isa();
  ::fusedattn::cpu::dispatch_dtype(features.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    ::fusedattn::cpu::parallel_over_batch(
        p, sh.B, 2 * sh.C * sh.N * sh.K,
        backward_workspace_bytes(p, accumulate_size(features.scalar_type())),
        kernels_for<scalar_t>(isa).backward);
  });
  return {grad_features, grad_logits};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(FUSEDATTN_LIBRARY, CPU, m) {
  m.impl("attention_pool_fwd", TORCH_BOX(&attention_pool_fwd_cpu));
  m.impl("attention_pool_infer", TORCH_BOX(&attention_pool_infer_cpu));
  m.impl("attention_pool_bwd", TORCH_BOX(&attention_pool_bwd_cpu));
}

}  // namespace cpu
}  // namespace attention_pool
}  // namespace fusedattn
