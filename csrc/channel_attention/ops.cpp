// The channel_attention op schemas, shared by the CPU and CUDA implementations (one
// STABLE_TORCH_LIBRARY_IMPL each). Fake kernels and autograd are registered from Python
// (fusedattn/ops/channel_attention/autograd.py). The math: docs/channel_attention.md.
#include <torch/csrc/stable/library.h>

#include "../common/library.h"

STABLE_TORCH_LIBRARY_FRAGMENT(FUSEDATTN_LIBRARY, m) {
  // x (B, C, N) or (B, C, H, W), any strides whose H and W merge into one pixel axis; fc1_weight
  // (R, C) or (R, C, 1, 1), fc2_weight (C, R) or (C, R, 1, 1), biases (R,), (C,) or None, all in
  // x's dtype or float32. Returns y (x's shape, dtype and layout) and the statistics the
  // backward needs, in float32 (float64 for float64 x): squeezed (B, C), hidden (B, R) (before
  // the activation) and gate_logits (B, C) (before the gate).
  m.def(
      "channel_attention_fwd(Tensor x, Tensor fc1_weight, Tensor? fc1_bias, Tensor fc2_weight,"
      " Tensor? fc2_bias, str activation, str gate)"
      " -> (Tensor y, Tensor squeezed, Tensor hidden, Tensor gate_logits)");
  // The forward for calls that record no autograd graph: y only.
  m.def(
      "channel_attention_infer(Tensor x, Tensor fc1_weight, Tensor? fc1_bias, Tensor fc2_weight,"
      " Tensor? fc2_bias, str activation, str gate) -> Tensor y");
  // grad_x (laid out like x) and the parameters' gradients in float32 (float64 for float64 x),
  // the weights' shaped like the weights, the biases' (R,) and (C,).
  m.def(
      "channel_attention_bwd(Tensor grad_y, Tensor x, Tensor fc1_weight, Tensor fc2_weight,"
      " Tensor squeezed, Tensor hidden, Tensor gate_logits, str activation, str gate)"
      " -> (Tensor grad_x, Tensor grad_fc1_weight, Tensor grad_fc1_bias,"
      " Tensor grad_fc2_weight, Tensor grad_fc2_bias)");
}
