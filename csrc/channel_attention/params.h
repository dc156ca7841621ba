// What a channel_attention kernel needs of one call, CPU or CUDA: pointers, strides and sizes, no
// torch types (the kernels' translation units include none). Filled by the host code's
// forward_params / backward_params (host.h). The squeeze, the MLP, the gate and every small
// per-sample statistic are in the accumulate type: float, or double for float64 inputs.
#pragma once

#include <stdint.h>

namespace fusedattn {
namespace channel_attention {

// The activation inside the bottleneck and the gate (docs/channel_attention.md).
enum class Activation : int32_t { kReLU = 0, kSiLU = 1 };
enum class Gate : int32_t { kSigmoid = 0, kHardSigmoid = 1 };

// The strides of a (B, C, N) view (a 4-D tensor with H and W merged into N).
struct Strides {
  int64_t b, c, n;
};

// The bottleneck MLP's parameters, dense and row-major: w1 (R, C), w2 (C, R), biases (R,), (C,)
// or nullptr. The CPU kernels get them in the accumulate type; the CUDA kernels in their own
// dtype (the input's or float32), converted as they are read.
struct Weights {
  const void* w1;
  const void* b1;
  const void* w2;
  const void* b2;
};

struct ForwardParams {
  const void* x;  // (B, C, N), strides sx, the input dtype
  void* y;        // (B, C, N), strides sy, the input dtype
  Strides sx, sy;
  int64_t B, C, N, R;
  Weights weights;
  // Saved for the backward, (B, C), (B, R), (B, C) contiguous; nullptr for an inference call.
  void* squeezed;     // s = mean_n x
  void* hidden;       // the bottleneck before its activation
  void* gate_logits;  // the gate's input
  Activation activation;
  Gate gate;
};

struct BackwardParams {
  const void* grad_y;  // strides sgy
  const void* x;       // strides sx
  void* grad_x;        // strides sgx
  Strides sgy, sx, sgx;
  int64_t B, C, N, R;
  Weights weights;
  const void* squeezed;     // (B, C) from the forward
  const void* hidden;       // (B, R)
  const void* gate_logits;  // (B, C)
  // The parameters' gradients, dense, in the accumulate type: (R, C), (R,), (C, R), (C,).
  void* grad_w1;
  void* grad_b1;
  void* grad_w2;
  void* grad_b2;
  // Per-sample scratch the parameters' gradients are summed from, in the accumulate type:
  // dL/dhidden (B, R), dL/dgate_logits (B, C) and the activated bottleneck (B, R).
  void* grad_hidden;
  void* grad_gate_logits;
  void* activated;
  Activation activation;
  Gate gate;
};

}  // namespace channel_attention
}  // namespace fusedattn
