// Per-element math of channel attention (docs/channel_attention.md), on top of the op-neutral
// common/math.h; shared by the CPU kernels (host compiler) and the CUDA kernels (nvcc), so the
// CPU test suite exercises exactly the formulas the GPU kernels run. The derivative conventions
// are torch's: relu'(0) = 0, hardsigmoid' = 1/6 strictly inside (-3, 3), 0 elsewhere.
#pragma once

#include "../common/math.h"
#include "params.h"

namespace fusedattn {
namespace channel_attention {
namespace math {

using namespace ::fusedattn::math;

template <typename acc_t>
FUSEDATTN_HD acc_t activate(Activation a, acc_t h) {
  if (a == Activation::kReLU) return h > acc_t(0) ? h : acc_t(0);
  return h * sigmoid(h);  // silu
}

// d act(h) / dh.
template <typename acc_t>
FUSEDATTN_HD acc_t activation_grad(Activation a, acc_t h) {
  if (a == Activation::kReLU) return h > acc_t(0) ? acc_t(1) : acc_t(0);
  const acc_t sg = sigmoid(h);
  return sg * (acc_t(1) + h * (acc_t(1) - sg));
}

template <typename acc_t>
FUSEDATTN_HD acc_t gate_value(Gate g, acc_t u) {
  if (g == Gate::kSigmoid) return sigmoid(u);
  // torch.nn.functional.hardsigmoid: relu6(u + 3) / 6
  const acc_t t = u + acc_t(3);
  return (t < acc_t(0) ? acc_t(0) : (t > acc_t(6) ? acc_t(6) : t)) / acc_t(6);
}

// d gate(u) / du, given gate(u) = value.
template <typename acc_t>
FUSEDATTN_HD acc_t gate_grad(Gate g, acc_t u, acc_t value) {
  if (g == Gate::kSigmoid) return value * (acc_t(1) - value);
  return (u > acc_t(-3) && u < acc_t(3)) ? acc_t(1) / acc_t(6) : acc_t(0);
}

}  // namespace math
}  // namespace channel_attention
}  // namespace fusedattn
