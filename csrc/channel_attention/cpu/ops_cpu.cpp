// Host side of the channel_attention CPU ops: argument checks and allocation (host.h, shared
// with the CUDA ops), dtype and instruction-set dispatch, and the parallel loops: over samples,
// then over the rows of the parameters' gradients. The kernels are in kernels_impl.h.
#include "../../common/cpu/host.h"
#include "../../common/library.h"
#include "../host.h"
#include "kernels.h"

#include <torch/csrc/stable/library.h>

namespace fusedattn {
namespace channel_attention {
namespace cpu {
namespace {

using ::fusedattn::cpu::Isa;

template <typename scalar_t>
struct Kernels {
  void (*forward)(const ForwardParams&, int64_t, int64_t, void*);
  void (*backward)(const BackwardParams&, int64_t, int64_t, void*);
  void (*weight_grads)(const BackwardParams&, int64_t, int64_t, void*);
};

template <typename scalar_t>
Kernels<scalar_t> kernels_for(Isa isa) {
  switch (isa) {
#if defined(__x86_64__) || defined(_M_X64)
    case Isa::Avx512:
      return {&isa_avx512::forward<scalar_t>, &isa_avx512::backward<scalar_t>,
              &isa_avx512::weight_grads<scalar_t>};
    case Isa::Avx2:
      return {&isa_avx2::forward<scalar_t>, &isa_avx2::backward<scalar_t>,
              &isa_avx2::weight_grads<scalar_t>};
#endif
    default:
      return {&isa_default::forward<scalar_t>, &isa_default::backward<scalar_t>,
              &isa_default::weight_grads<scalar_t>};
  }
}

size_t workspace_of(const Shape& s, const Tensor& x) {
  return workspace_bytes(s.C, s.N, s.R, accumulate_size(x.scalar_type()));
}

ForwardOutputs forward(const Tensor& x_in, const Tensor& w1, const std::optional<Tensor>& b1,
                       const Tensor& w2, const std::optional<Tensor>& b2,
                       const std::string& activation, const std::string& gate, bool saved) {
  // A 4-D x whose pixels do not merge into one axis is read from a contiguous copy.
  const Tensor x = as_mergeable(x_in);
  const Shape sh = check_forward_args(x, w1, b1, w2, b2, activation, gate);
  const ForwardOutputs out = allocate_forward_outputs(x, sh, saved);
  const DenseWeights weights = dense_weights(w1, b1, w2, b2, accumulate_dtype(x.scalar_type()));
  const ForwardParams p = forward_params(x, sh, weights.pointers, out);
  const Isa isa = ::fusedattn::cpu::pick_isa();
  ::fusedattn::cpu::dispatch_dtype(x.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    ::fusedattn::cpu::parallel_over_batch(p, sh.B, 2 * sh.C * (sh.N + sh.R), workspace_of(sh, x),
                                          kernels_for<scalar_t>(isa).forward);
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> channel_attention_fwd_cpu(
    const Tensor& x, const Tensor& w1, const std::optional<Tensor>& b1, const Tensor& w2,
    const std::optional<Tensor>& b2, std::string activation, std::string gate) {
  ForwardOutputs out = forward(x, w1, b1, w2, b2, activation, gate, true);
  return {out.y, *out.squeezed, *out.hidden, *out.gate_logits};
}

Tensor channel_attention_infer_cpu(const Tensor& x, const Tensor& w1,
                                   const std::optional<Tensor>& b1, const Tensor& w2,
                                   const std::optional<Tensor>& b2, std::string activation,
                                   std::string gate) {
  return forward(x, w1, b1, w2, b2, activation, gate, false).y;
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> channel_attention_bwd_cpu(
    const Tensor& grad_y_in, const Tensor& x_in, const Tensor& w1, const Tensor& w2,
    const Tensor& squeezed, const Tensor& hidden, const Tensor& gate_logits,
    std::string activation, std::string gate) {
  const Tensor x = as_mergeable(x_in), grad_y = as_mergeable(grad_y_in);
  const Shape sh = check_backward_args(grad_y, x, w1, w2, squeezed, hidden, gate_logits,
                                       activation, gate);
  BackwardOutputs out = allocate_backward_outputs(x, w1, w2, sh);
  ::fusedattn::cpu::advise_huge_pages(out.grad_x);
  const DenseWeights weights = dense_weights(w1, std::nullopt, w2, std::nullopt,
                                             accumulate_dtype(x.scalar_type()));
  BackwardInputs kept;
  const BackwardParams p = backward_params(grad_y, x, sh, weights.pointers, squeezed, hidden,
                                           gate_logits, out, kept);
  const Isa isa = ::fusedattn::cpu::pick_isa();
  ::fusedattn::cpu::dispatch_dtype(x.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    const Kernels<scalar_t> kernels = kernels_for<scalar_t>(isa);
    ::fusedattn::cpu::parallel_over_batch(p, sh.B, 2 * sh.C * (sh.N + sh.R), workspace_of(sh, x),
                                          kernels.backward);
    // Then the parameters' gradients, one row (of fc1's R, then fc2's C) per task, each summed
    // over the samples in order.
    ::fusedattn::cpu::parallel_over_batch(p, sh.R + sh.C, sh.B * (sh.C > sh.R ? sh.C : sh.R), 0,
                                          kernels.weight_grads);
  });
  return {out.grad_x, out.grad_w1, out.grad_b1, out.grad_w2, out.grad_b2};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(FUSEDATTN_LIBRARY, CPU, m) {
  m.impl("channel_attention_fwd", TORCH_BOX(&channel_attention_fwd_cpu));
  m.impl("channel_attention_infer", TORCH_BOX(&channel_attention_infer_cpu));
  m.impl("channel_attention_bwd", TORCH_BOX(&channel_attention_bwd_cpu));
}

}  // namespace cpu
}  // namespace channel_attention
}  // namespace fusedattn
