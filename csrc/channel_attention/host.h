// Host-side contract of the channel_attention ops, shared by their CPU and CUDA
// implementations: argument checks, output allocation and the kernels' params. Written against
// torch's stable ABI (torch/csrc/stable, TORCH_TARGET_VERSION 2.10), like attention_pool's. The
// op schemas are in ops.cpp; the math in docs/channel_attention.md.
#pragma once

#include "../common/checks.h"
#include "params.h"

#include <optional>
#include <string>
#include <tuple>

namespace fusedattn {
namespace channel_attention {

// Sizes of one call: x (B, C, N) or (B, C, H, W) (H and W mergeable into one pixel axis), the
// bottleneck of R channels, and the dtype of the parameters (x's, or float32 for 16-bit x).
struct Shape {
  int64_t B, C, N, R;
  Activation activation;
  Gate gate;
  ScalarType weight_dtype;
};

Activation parse_activation(const std::string& activation);
Gate parse_gate(const std::string& gate);

Shape check_forward_args(const Tensor& x, const Tensor& w1, const std::optional<Tensor>& b1,
                         const Tensor& w2, const std::optional<Tensor>& b2,
                         const std::string& activation, const std::string& gate);

Shape check_backward_args(const Tensor& grad_y, const Tensor& x, const Tensor& w1,
                          const Tensor& w2, const Tensor& squeezed, const Tensor& hidden,
                          const Tensor& gate_logits, const std::string& activation,
                          const std::string& gate);

// The parameters as the kernels read them: dense, in `dtype` (converted once when theirs
// differs). `kept` holds any converted or contiguous copies alive while the params are used.
struct DenseWeights {
  Weights pointers;
  Tensor kept[4];
};
DenseWeights dense_weights(const Tensor& w1, const std::optional<Tensor>& b1, const Tensor& w2,
                           const std::optional<Tensor>& b2, ScalarType dtype);

// What a forward returns: y (x's shape, dtype and layout) and, unless it is an inference call,
// the statistics a backward needs: squeezed (B, C), hidden (B, R), gate_logits (B, C).
struct ForwardOutputs {
  Tensor y;
  std::optional<Tensor> squeezed, hidden, gate_logits;
};
ForwardOutputs allocate_forward_outputs(const Tensor& x, const Shape& shape, bool saved);

ForwardParams forward_params(const Tensor& x, const Shape& shape, const Weights& weights,
                             const ForwardOutputs& outputs);

// What a backward returns: grad_x laid out like x, and the parameters' gradients in the
// accumulate type, shaped like the parameters (the biases' as (R,) and (C,) always).
struct BackwardOutputs {
  Tensor grad_x, grad_w1, grad_b1, grad_w2, grad_b2;
};
BackwardOutputs allocate_backward_outputs(const Tensor& x, const Tensor& w1, const Tensor& w2,
                                          const Shape& shape);

// The kernels' view of a backward call; the small saved statistics are made contiguous, and the
// per-sample scratch allocated (`kept` holds them alive while the params are used).
struct BackwardInputs {
  Tensor squeezed, hidden, gate_logits, grad_hidden, grad_gate_logits, activated;
};
BackwardParams backward_params(const Tensor& grad_y, const Tensor& x, const Shape& shape,
                               const Weights& weights, const Tensor& squeezed,
                               const Tensor& hidden, const Tensor& gate_logits,
                               const BackwardOutputs& outputs, BackwardInputs& kept);

}  // namespace channel_attention
}  // namespace fusedattn
