#include "host.h"

#include <torch/csrc/stable/ops.h>

namespace fusedattn {
namespace channel_attention {

using torch::headeronly::toString;

Activation parse_activation(const std::string& activation) {
  if (activation == "relu") return Activation::kReLU;
  FUSEDATTN_CHECK(activation == "silu", "activation must be 'relu' or 'silu', got '", activation,
                  "'");
  return Activation::kSiLU;
}

Gate parse_gate(const std::string& gate) {
  if (gate == "sigmoid") return Gate::kSigmoid;
  FUSEDATTN_CHECK(gate == "hardsigmoid", "gate must be 'sigmoid' or 'hardsigmoid', got '", gate,
                  "'");
  return Gate::kHardSigmoid;
}

namespace {

// A (rows, cols) matrix given as (rows, cols) or as a 1x1 convolution's (rows, cols, 1, 1).
void check_matrix(const Tensor& w, const char* name, int64_t rows, int64_t cols) {
  const bool shape_ok = (w.dim() == 2 || (w.dim() == 4 && w.size(2) == 1 && w.size(3) == 1)) &&
                        w.size(0) == rows && w.size(1) == cols;
  FUSEDATTN_CHECK(shape_ok, name, " must have shape [", rows, ", ", cols, "] or [", rows, ", ",
                  cols, ", 1, 1], got ", sizes_string(w));
}

void check_parameter(const Tensor& t, const char* name, const Tensor& x, ScalarType dtype) {
  check_dtype(t, name, dtype);
  check_same_device(t, name, x, "x");
}

}  // namespace

Shape check_forward_args(const Tensor& x, const Tensor& w1, const std::optional<Tensor>& b1,
                         const Tensor& w2, const std::optional<Tensor>& b2,
                         const std::string& activation, const std::string& gate) {
  const PixelRows v = pixel_rows(x, "x");
  const ScalarType dtype = x.scalar_type();
  FUSEDATTN_CHECK(is_supported_dtype(dtype),
                  "x must be float16, bfloat16, float32 or float64, got ", toString(dtype));
  FUSEDATTN_CHECK(w1.dim() >= 2, "fc1_weight must be 2-D (R, C) or 4-D (R, C, 1, 1), got ",
                  sizes_string(w1));
  const int64_t R = w1.size(0);
  FUSEDATTN_CHECK(R > 0, "fc1_weight must have R >= 1 squeeze channels, got ", sizes_string(w1));
  check_matrix(w1, "fc1_weight", R, v.rows);
  check_matrix(w2, "fc2_weight", v.rows, R);
  const ScalarType wdtype = w1.scalar_type();
  FUSEDATTN_CHECK(wdtype == dtype || wdtype == accumulate_dtype(dtype),
                  "fc1_weight must be ", toString(dtype), " or ", toString(accumulate_dtype(dtype)),
                  " (x's dtype or float32), got ", toString(wdtype));
  check_parameter(w1, "fc1_weight", x, wdtype);
  check_parameter(w2, "fc2_weight", x, wdtype);
  if (b1.has_value()) {
    check_shape(*b1, "fc1_bias", {R});
    check_parameter(*b1, "fc1_bias", x, wdtype);
  }
  if (b2.has_value()) {
    check_shape(*b2, "fc2_bias", {v.rows});
    check_parameter(*b2, "fc2_bias", x, wdtype);
  }
  FUSEDATTN_CHECK(v.pixels > 0, "x must have at least one pixel, got shape ", sizes_string(x));
  return Shape{v.batch, v.rows, v.pixels, R, parse_activation(activation), parse_gate(gate),
               wdtype};
}

Shape check_backward_args(const Tensor& grad_y, const Tensor& x, const Tensor& w1,
                          const Tensor& w2, const Tensor& squeezed, const Tensor& hidden,
                          const Tensor& gate_logits, const std::string& activation,
                          const std::string& gate) {
  const Shape s = check_forward_args(x, w1, std::nullopt, w2, std::nullopt, activation, gate);
  FUSEDATTN_CHECK(grad_y.dim() == x.dim(), "grad_y must have x's shape ", sizes_string(x),
                  ", got ", sizes_string(grad_y));
  for (int64_t d = 0; d < x.dim(); ++d) {
    FUSEDATTN_CHECK(grad_y.size(d) == x.size(d), "grad_y must have x's shape ", sizes_string(x),
                    ", got ", sizes_string(grad_y));
  }
  check_dtype(grad_y, "grad_y", x.scalar_type());
  check_same_device(grad_y, "grad_y", x, "x");
  const ScalarType acc = accumulate_dtype(x.scalar_type());
  auto check_statistic = [&](const Tensor& t, const char* name, int64_t cols) {
    check_shape(t, name, {s.B, cols});
    check_dtype(t, name, acc);
    check_same_device(t, name, x, "x");
  };
  check_statistic(squeezed, "squeezed", s.C);
  check_statistic(hidden, "hidden", s.R);
  check_statistic(gate_logits, "gate_logits", s.C);
  return s;
}

DenseWeights dense_weights(const Tensor& w1, const std::optional<Tensor>& b1, const Tensor& w2,
                           const std::optional<Tensor>& b2, ScalarType dtype) {
  DenseWeights out{};
  auto dense = [&](const Tensor& t, int i) -> const void* {
    out.kept[i] = t.scalar_type() == dtype ? as_contiguous(t)
                                          : as_contiguous(torch::stable::to(t, dtype));
    return out.kept[i].const_data_ptr();
  };
  out.pointers.w1 = dense(w1, 0);
  out.pointers.b1 = b1.has_value() ? dense(*b1, 1) : nullptr;
  out.pointers.w2 = dense(w2, 2);
  out.pointers.b2 = b2.has_value() ? dense(*b2, 3) : nullptr;
  return out;
}

ForwardOutputs allocate_forward_outputs(const Tensor& x, const Shape& s, bool saved) {
  ForwardOutputs out{torch::stable::empty_like(x), std::nullopt, std::nullopt, std::nullopt};
  if (saved) {
    const ScalarType acc = accumulate_dtype(x.scalar_type());
    out.squeezed = empty_on(x, {s.B, s.C}, acc);
    out.hidden = empty_on(x, {s.B, s.R}, acc);
    out.gate_logits = empty_on(x, {s.B, s.C}, acc);
  }
  return out;
}

namespace {
Strides strides_of(const Tensor& t, const char* name) {
  const PixelRows v = pixel_rows(t, name);
  return Strides{v.stride_batch, v.stride_row, v.stride_pixel};
}
}  // namespace

ForwardParams forward_params(const Tensor& x, const Shape& s, const Weights& weights,
                             const ForwardOutputs& out) {
  ForwardParams p{};
  p.x = x.const_data_ptr();
  p.y = out.y.mutable_data_ptr();
  p.sx = strides_of(x, "x");
  p.sy = strides_of(out.y, "y");
  p.B = s.B, p.C = s.C, p.N = s.N, p.R = s.R;
  p.weights = weights;
  p.squeezed = out.squeezed.has_value() ? out.squeezed->mutable_data_ptr() : nullptr;
  p.hidden = out.hidden.has_value() ? out.hidden->mutable_data_ptr() : nullptr;
  p.gate_logits = out.gate_logits.has_value() ? out.gate_logits->mutable_data_ptr() : nullptr;
  p.activation = s.activation;
  p.gate = s.gate;
  return p;
}

BackwardOutputs allocate_backward_outputs(const Tensor& x, const Tensor& w1, const Tensor& w2,
                                          const Shape& s) {
  const ScalarType acc = accumulate_dtype(x.scalar_type());
  auto like = [&](const Tensor& w) {
    return w.dim() == 4 ? empty_on(x, {w.size(0), w.size(1), 1, 1}, acc)
                        : empty_on(x, {w.size(0), w.size(1)}, acc);
  };
  return BackwardOutputs{torch::stable::empty_like(x), like(w1), empty_on(x, {s.R}, acc),
                         like(w2), empty_on(x, {s.C}, acc)};
}

BackwardParams backward_params(const Tensor& grad_y, const Tensor& x, const Shape& s,
                               const Weights& weights, const Tensor& squeezed,
                               const Tensor& hidden, const Tensor& gate_logits,
                               const BackwardOutputs& out, BackwardInputs& kept) {
  kept.squeezed = as_contiguous(squeezed);
  kept.hidden = as_contiguous(hidden);
  kept.gate_logits = as_contiguous(gate_logits);
  const ScalarType acc = accumulate_dtype(x.scalar_type());
  kept.grad_hidden = empty_on(x, {s.B, s.R}, acc);
  kept.grad_gate_logits = empty_on(x, {s.B, s.C}, acc);
  kept.activated = empty_on(x, {s.B, s.R}, acc);
  BackwardParams p{};
  p.grad_y = grad_y.const_data_ptr();
  p.x = x.const_data_ptr();
  p.grad_x = out.grad_x.mutable_data_ptr();
  p.sgy = strides_of(grad_y, "grad_y");
  p.sx = strides_of(x, "x");
  p.sgx = strides_of(out.grad_x, "grad_x");
  p.B = s.B, p.C = s.C, p.N = s.N, p.R = s.R;
  p.weights = weights;
  p.squeezed = kept.squeezed.const_data_ptr();
  p.hidden = kept.hidden.const_data_ptr();
  p.gate_logits = kept.gate_logits.const_data_ptr();
  p.grad_w1 = out.grad_w1.mutable_data_ptr();
  p.grad_b1 = out.grad_b1.mutable_data_ptr();
  p.grad_w2 = out.grad_w2.mutable_data_ptr();
  p.grad_b2 = out.grad_b2.mutable_data_ptr();
  p.grad_hidden = kept.grad_hidden.mutable_data_ptr();
  p.grad_gate_logits = kept.grad_gate_logits.mutable_data_ptr();
  p.activated = kept.activated.mutable_data_ptr();
  p.activation = s.activation;
  p.gate = s.gate;
  return p;
}

}  // namespace channel_attention
}  // namespace fusedattn
