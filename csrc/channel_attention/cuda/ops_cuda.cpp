// Host side of the channel_attention CUDA ops (torch's stable ABI, like the CPU ops): argument
// checks and allocation (host.h, shared with the CPU ops), the plan of the launches (kernels.h:
// batch chunks, pixel splits, the squeeze's layout), the device guard and the caller's current
// stream (so CUDA graphs and torch.compile capture the launches). The kernels are in
// streaming.cu and mlp.cu.
#include "../../common/cuda/host.h"
#include "../../common/library.h"
#include "../host.h"
#include "kernels.h"

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>

namespace fusedattn {
namespace channel_attention {
namespace cuda {
namespace {

using ::fusedattn::cuda::current_stream;
using ::fusedattn::cuda::DeviceGuard;
using ::fusedattn::cuda::kernel_dtype;

constexpr int64_t kMaxChannels = 8192, kMaxSqueezeChannels = 4096;

void check_cuda_shape(const Shape& sh) {
  FUSEDATTN_CHECK(sh.C <= kMaxChannels && sh.R <= kMaxSqueezeChannels,
                  "the cuda backend supports up to ", kMaxChannels, " channels and ",
                  kMaxSqueezeChannels, " squeeze channels, got C=", sh.C, ", R=", sh.R,
                  " (use backend='cpu' or 'reference')");
  FUSEDATTN_CHECK(sh.B <= INT32_MAX, "the cuda backend supports up to 2^31 - 1 samples, got B=",
                  sh.B);
}

DType weight_kernel_dtype(const Tensor& w) { return kernel_dtype(w); }

Strides strides_of(const Tensor& t) {
  const PixelRows v = pixel_rows(t, "tensor");
  return Strides{v.stride_batch, v.stride_row, v.stride_pixel};
}

Plan plan_for(const Tensor& a, const Tensor* b, const Shape& sh, int slab_tensors) {
  const Strides sa = strides_of(a);
  const Strides sb = b != nullptr ? strides_of(*b) : sa;
  const auto address = [](const Tensor& t) {
    return reinterpret_cast<uintptr_t>(t.const_data_ptr());
  };
  const SqueezeLayout layout =
      squeeze_layout(sa, address(a), b != nullptr ? &sb : nullptr,
                     b != nullptr ? address(*b) : 0, sh.C, sh.N, a.element_size());
  return make_plan(sh.B, sh.C, sh.N, a.element_size(), slab_tensors, layout,
                   device_limits(a.get_device_index()));
}

Tensor workspace_for(const Tensor& like, const Plan& plan, const Shape& sh) {
  return torch::stable::new_empty(like, {workspace_floats(plan, sh.C)},
                                  std::make_optional(ScalarType::Float));
}

ForwardOutputs forward(const Tensor& x_in, const Tensor& w1, const std::optional<Tensor>& b1,
                       const Tensor& w2, const std::optional<Tensor>& b2,
                       const std::string& activation, const std::string& gate, bool saved) {
  // A 4-D x whose pixels do not merge into one axis is read from a contiguous copy.
  const Tensor x = as_mergeable(x_in);
  const Shape sh = check_forward_args(x, w1, b1, w2, b2, activation, gate);
  check_cuda_shape(sh);
  const DType dtype = kernel_dtype(x);
  const DeviceGuard guard(x);
  const ForwardOutputs out = allocate_forward_outputs(x, sh, saved);
  if (sh.B == 0) return out;
  const DenseWeights weights = dense_weights(w1, b1, w2, b2, sh.weight_dtype);
  const ForwardParams p = forward_params(x, sh, weights.pointers, out);
  const Plan plan = plan_for(x, nullptr, sh, 1);
  Tensor workspace = workspace_for(x, plan, sh);
  launch_forward(p, dtype, weight_kernel_dtype(w1), plan, workspace.mutable_data_ptr<float>(),
                 current_stream(x));
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> channel_attention_fwd_cuda(
    const Tensor& x, const Tensor& w1, const std::optional<Tensor>& b1, const Tensor& w2,
    const std::optional<Tensor>& b2, std::string activation, std::string gate) {
  ForwardOutputs out = forward(x, w1, b1, w2, b2, activation, gate, true);
  return {out.y, *out.squeezed, *out.hidden, *out.gate_logits};
}

Tensor channel_attention_infer_cuda(const Tensor& x, const Tensor& w1,
                                    const std::optional<Tensor>& b1, const Tensor& w2,
                                    const std::optional<Tensor>& b2, std::string activation,
                                    std::string gate) {
  return forward(x, w1, b1, w2, b2, activation, gate, false).y;
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> channel_attention_bwd_cuda(
    const Tensor& grad_y_in, const Tensor& x_in, const Tensor& w1, const Tensor& w2,
    const Tensor& squeezed, const Tensor& hidden, const Tensor& gate_logits,
    std::string activation, std::string gate) {
  const Tensor x = as_mergeable(x_in);
  Tensor grad_y = as_mergeable(grad_y_in);
  const Shape sh = check_backward_args(grad_y, x, w1, w2, squeezed, hidden, gate_logits,
                                       activation, gate);
  check_cuda_shape(sh);
  const DType dtype = kernel_dtype(x);
  const DeviceGuard guard(x);
  BackwardOutputs out = allocate_backward_outputs(x, w1, w2, sh);
  if (sh.B == 0) {
    torch::stable::zero_(out.grad_w1), torch::stable::zero_(out.grad_b1);
    torch::stable::zero_(out.grad_w2), torch::stable::zero_(out.grad_b2);
    return {out.grad_x, out.grad_w1, out.grad_b1, out.grad_w2, out.grad_b2};
  }
  // grad_y in grad_x's (x's) layout, so that the streaming passes take their dense paths (an
  // expanded or transposed grad_y, say from y.sum(), is copied once).
  const Strides sgy = strides_of(grad_y), sgx = strides_of(out.grad_x);
  if (sgy.b != sgx.b || sgy.c != sgx.c || sgy.n != sgx.n) {
    Tensor copy = torch::stable::empty_like(out.grad_x);
    torch::stable::copy_(copy, grad_y);
    grad_y = copy;
  }
  const DenseWeights weights = dense_weights(w1, std::nullopt, w2, std::nullopt, sh.weight_dtype);
  BackwardInputs kept;
  const BackwardParams p = backward_params(grad_y, x, sh, weights.pointers, squeezed, hidden,
                                           gate_logits, out, kept);
  const Plan plan = plan_for(grad_y, &x, sh, 2);
  Tensor workspace = workspace_for(x, plan, sh);
  launch_backward(p, dtype, weight_kernel_dtype(w1), plan, workspace.mutable_data_ptr<float>(),
                  current_stream(x));
  return {out.grad_x, out.grad_w1, out.grad_b1, out.grad_w2, out.grad_b2};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(FUSEDATTN_LIBRARY, FUSEDATTN_CUDA_DISPATCH_KEY, m) {
  m.impl("channel_attention_fwd", TORCH_BOX(&channel_attention_fwd_cuda));
  m.impl("channel_attention_infer", TORCH_BOX(&channel_attention_infer_cuda));
  m.impl("channel_attention_bwd", TORCH_BOX(&channel_attention_bwd_cuda));
}

}  // namespace cuda
}  // namespace channel_attention
}  // namespace fusedattn
