// Fused CPU kernels of channel attention (docs/channel_attention.md), one sample at a time. The
// sample's slab (C x N) is read by the squeeze and read again by the excite while it is still in
// the core's cache (the "on chip" floor of the spec at the usual SE sizes); the bottleneck MLP in
// between is two small matrix-vector products. The backward reads grad_y and x once for the
// gate's gradient and grad_y again (cached) to write grad_x; the parameters' gradients are
// summed over the batch afterwards, in a fixed order (deterministic).
//
// Included by kernels_<isa>.cpp after common/cpu/target_<isa>.h; every function has internal
// linkage, so no code compiled for one instruction set can be picked by the linker for another.
#pragma once

#ifndef FUSEDATTN_CPU_ISA
#error "include common/cpu/target_<isa>.h before kernels_impl.h"
#endif

#include "../../common/cpu/vec.h"
#include "../math.h"
#include "kernels.h"

namespace fusedattn {
namespace channel_attention {
namespace cpu {
namespace FUSEDATTN_CPU_ISA {
namespace {

using namespace ::fusedattn::cpu::FUSEDATTN_CPU_ISA;
using ::fusedattn::cpu::Acc;
namespace cm = ::fusedattn::channel_attention::math;

template <typename acc_t>
acc_t row_sum(const acc_t* __restrict x, int64_t n) {
  acc_t sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  return sum;
}

// y += a * b, elementwise.
template <typename acc_t>
void multiply_add(const acc_t* __restrict a, const acc_t* __restrict b, acc_t* __restrict y,
                  int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a[i] * b[i];
}

// dst = src * scale + shift, for one row of n elements (strides in elements), with the scale and
// shift either per row (scalars, NCHW rows) or per element (vectors, channels_last rows).
template <typename scalar_t, typename acc_t, typename Scale, typename Shift>
void scale_row(const scalar_t* __restrict src, int64_t src_stride, int64_t n, Scale scale,
               Shift shift, acc_t* __restrict buf, scalar_t* __restrict dst, int64_t dst_stride) {
  const acc_t* x = row_view(src, src_stride, n, buf);
  if (dst_stride == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = from_acc<scalar_t>(x[i] * scale(i) + shift(i));
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i * dst_stride] = from_acc<scalar_t>(x[i] * scale(i) + shift(i));
  }
}

// Rows of a (C, N) slab with strides (sc, sn): along the pixels (one per channel, NCHW and
// generic strides) or along the channels (one per pixel, channels_last).
inline bool pixel_rows(const Strides& s, int64_t N) { return !rows_are_channels(s.c, s.n, N); }

// s[c] = mean_n x[c, n].
template <typename scalar_t, typename acc_t>
void squeeze(const scalar_t* x, const Strides& sx, int64_t C, int64_t N, acc_t* s, acc_t* buf) {
  if (pixel_rows(sx, N)) {
    for (int64_t c = 0; c < C; ++c) s[c] = row_sum(row_view(x + c * sx.c, sx.n, N, buf), N);
  } else {
    for (int64_t c = 0; c < C; ++c) s[c] = 0;
    for (int64_t n = 0; n < N; ++n) axpy(acc_t(1), row_view(x + n * sx.n, sx.c, C, buf), s, C);
  }
  const acc_t inv_n = acc_t(1) / acc_t(N);
  for (int64_t c = 0; c < C; ++c) s[c] *= inv_n;
}

// d[c] = sum_n a[c, n] b[c, n] (the gate's gradient before its derivative).
template <typename scalar_t, typename acc_t>
void channel_dot(const scalar_t* a, const Strides& sa, const scalar_t* b, const Strides& sb,
                 int64_t C, int64_t N, acc_t* d, acc_t* buf_a, acc_t* buf_b) {
  if (pixel_rows(sa, N) || pixel_rows(sb, N)) {
    for (int64_t c = 0; c < C; ++c) {
      d[c] = dot(row_view(a + c * sa.c, sa.n, N, buf_a), row_view(b + c * sb.c, sb.n, N, buf_b), N);
    }
  } else {
    for (int64_t c = 0; c < C; ++c) d[c] = 0;
    for (int64_t n = 0; n < N; ++n) {
      multiply_add(row_view(a + n * sa.n, sa.c, C, buf_a), row_view(b + n * sb.n, sb.c, C, buf_b),
                   d, C);
    }
  }
}

// out[c, n] = in[c, n] * scale[c] + shift[c] (shift may be nullptr).
template <typename scalar_t, typename acc_t>
void excite(const scalar_t* in, const Strides& si, scalar_t* out, const Strides& so, int64_t C,
            int64_t N, const acc_t* scale, const acc_t* shift, acc_t* buf) {
  if (pixel_rows(si, N) || pixel_rows(so, N)) {
    for (int64_t c = 0; c < C; ++c) {
      const acc_t g = scale[c], t = shift != nullptr ? shift[c] : acc_t(0);
      scale_row(in + c * si.c, si.n, N, [g](int64_t) { return g; }, [t](int64_t) { return t; },
                buf, out + c * so.c, so.n);
    }
  } else if (shift == nullptr) {
    for (int64_t n = 0; n < N; ++n) {
      scale_row(in + n * si.n, si.c, C, [scale](int64_t i) { return scale[i]; },
                [](int64_t) { return acc_t(0); }, buf, out + n * so.n, so.c);
    }
  } else {
    for (int64_t n = 0; n < N; ++n) {
      scale_row(in + n * si.n, si.c, C, [scale](int64_t i) { return scale[i]; },
                [shift](int64_t i) { return shift[i]; }, buf, out + n * so.n, so.c);
    }
  }
}

// out[i] = sum_j m[i, j] v[j] + bias[i] for a dense (rows, cols) matrix m.
template <typename acc_t>
void matvec(const acc_t* m, const acc_t* bias, const acc_t* v, int64_t rows, int64_t cols,
            acc_t* out) {
  dot_many(m, cols, v, cols, rows, out);
  if (bias != nullptr) {
    for (int64_t i = 0; i < rows; ++i) out[i] += bias[i];
  }
}

// out[j] = sum_i m[i, j] v[i] for a dense (rows, cols) matrix m: the transposed product, as rows
// of m scaled and summed (contiguous sweeps).
template <typename acc_t>
void matvec_transposed(const acc_t* m, const acc_t* v, int64_t rows, int64_t cols, acc_t* out) {
  for (int64_t j = 0; j < cols; ++j) out[j] = 0;
  for (int64_t i = 0; i < rows; ++i) axpy(v[i], m + i * cols, out, cols);
}

}  // namespace

template <typename scalar_t>
void forward(const ForwardParams& p, int64_t b_begin, int64_t b_end, void* workspace) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t C = p.C, N = p.N, R = p.R;
  const acc_t* w1 = static_cast<const acc_t*>(p.weights.w1);
  const acc_t* b1 = static_cast<const acc_t*>(p.weights.b1);
  const acc_t* w2 = static_cast<const acc_t*>(p.weights.w2);
  const acc_t* b2 = static_cast<const acc_t*>(p.weights.b2);
  acc_t* s_scratch = static_cast<acc_t*>(workspace);  // [C]
  acc_t* u_scratch = s_scratch + C;                    // [C]
  acc_t* g = u_scratch + C;                            // [C]
  acc_t* h_scratch = g + 2 * C;                        // [R] (one C-long vector unused here)
  acc_t* z = h_scratch + R;                            // [R]
  acc_t* buf = z + R;                                  // [max(C, N)]
  for (int64_t b = b_begin; b < b_end; ++b) {
    const scalar_t* x = static_cast<const scalar_t*>(p.x) + b * p.sx.b;
    scalar_t* y = static_cast<scalar_t*>(p.y) + b * p.sy.b;
    acc_t* s = p.squeezed != nullptr ? static_cast<acc_t*>(p.squeezed) + b * C : s_scratch;
    acc_t* h = p.hidden != nullptr ? static_cast<acc_t*>(p.hidden) + b * R : h_scratch;
    acc_t* u = p.gate_logits != nullptr ? static_cast<acc_t*>(p.gate_logits) + b * C : u_scratch;
    squeeze(x, p.sx, C, N, s, buf);
    matvec(w1, b1, s, R, C, h);
    for (int64_t r = 0; r < R; ++r) z[r] = cm::activate(p.activation, h[r]);
    matvec(w2, b2, z, C, R, u);
    for (int64_t c = 0; c < C; ++c) g[c] = cm::gate_value(p.gate, u[c]);
    excite(x, p.sx, y, p.sy, C, N, g, static_cast<const acc_t*>(nullptr), buf);
  }
}

template <typename scalar_t>
void backward(const BackwardParams& p, int64_t b_begin, int64_t b_end, void* workspace) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t C = p.C, N = p.N, R = p.R;
  const acc_t* w1 = static_cast<const acc_t*>(p.weights.w1);
  const acc_t* w2 = static_cast<const acc_t*>(p.weights.w2);
  const acc_t inv_n = acc_t(1) / acc_t(N);
  acc_t* d = static_cast<acc_t*>(workspace);  // [C]: sum_n gy x, then ds / N
  acc_t* g = d + C;                            // [C]
  acc_t* dz = g + 2 * C;                       // [R]
  acc_t* buf_a = dz + 2 * R;                   // [max(C, N)]
  acc_t* buf_b = buf_a + (N > C ? N : C);      // [max(C, N)]
  for (int64_t b = b_begin; b < b_end; ++b) {
    const scalar_t* gy = static_cast<const scalar_t*>(p.grad_y) + b * p.sgy.b;
    const scalar_t* x = static_cast<const scalar_t*>(p.x) + b * p.sx.b;
    scalar_t* gx = static_cast<scalar_t*>(p.grad_x) + b * p.sgx.b;
    const acc_t* h = static_cast<const acc_t*>(p.hidden) + b * R;
    const acc_t* u = static_cast<const acc_t*>(p.gate_logits) + b * C;
    acc_t* du = static_cast<acc_t*>(p.grad_gate_logits) + b * C;
    acc_t* dh = static_cast<acc_t*>(p.grad_hidden) + b * R;
    acc_t* z = static_cast<acc_t*>(p.activated) + b * R;
    channel_dot(gy, p.sgy, x, p.sx, C, N, d, buf_a, buf_b);
    for (int64_t c = 0; c < C; ++c) {
      g[c] = cm::gate_value(p.gate, u[c]);
      du[c] = d[c] * cm::gate_grad(p.gate, u[c], g[c]);
    }
    matvec_transposed(w2, du, C, R, dz);  // dz[r] = sum_c w2[c, r] du[c]
    for (int64_t r = 0; r < R; ++r) {
      z[r] = cm::activate(p.activation, h[r]);
      dh[r] = dz[r] * cm::activation_grad(p.activation, h[r]);
    }
    matvec_transposed(w1, dh, R, C, d);  // ds[c] = sum_r w1[r, c] dh[r]
    for (int64_t c = 0; c < C; ++c) d[c] *= inv_n;
    excite(gy, p.sgy, gx, p.sgx, C, N, g, d, buf_a);
  }
}

template <typename scalar_t>
void weight_grads(const BackwardParams& p, int64_t row_begin, int64_t row_end, void*) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t B = p.B, C = p.C, R = p.R;
  const acc_t* s = static_cast<const acc_t*>(p.squeezed);
  const acc_t* dh = static_cast<const acc_t*>(p.grad_hidden);
  const acc_t* du = static_cast<const acc_t*>(p.grad_gate_logits);
  const acc_t* z = static_cast<const acc_t*>(p.activated);
  for (int64_t row = row_begin; row < row_end; ++row) {
    // fc1: gw1[r, :] = sum_b dh[b, r] s[b, :]; fc2: gw2[c, :] = sum_b du[b, c] z[b, :]
    const bool fc1 = row < R;
    const int64_t i = fc1 ? row : row - R, cols = fc1 ? C : R, ld = fc1 ? R : C;
    const acc_t* coef = fc1 ? dh : du;
    const acc_t* vec = fc1 ? s : z;
    acc_t* out = static_cast<acc_t*>(fc1 ? p.grad_w1 : p.grad_w2) + i * cols;
    acc_t bias = 0;
    for (int64_t j = 0; j < cols; ++j) out[j] = 0;
    for (int64_t b = 0; b < B; ++b) {
      axpy(coef[b * ld + i], vec + b * cols, out, cols);
      bias += coef[b * ld + i];
    }
    static_cast<acc_t*>(fc1 ? p.grad_b1 : p.grad_b2)[i] = bias;
  }
}

#define FUSEDATTN_INSTANTIATE(scalar_t)                                                         \
  template void forward<scalar_t>(const ForwardParams&, int64_t, int64_t, void*);               \
  template void backward<scalar_t>(const BackwardParams&, int64_t, int64_t, void*);             \
  template void weight_grads<scalar_t>(const BackwardParams&, int64_t, int64_t, void*);
FUSEDATTN_INSTANTIATE(float)
FUSEDATTN_INSTANTIATE(double)
FUSEDATTN_INSTANTIATE(Half)
FUSEDATTN_INSTANTIATE(BFloat16)
#undef FUSEDATTN_INSTANTIATE

}  // namespace FUSEDATTN_CPU_ISA
}  // namespace cpu
}  // namespace channel_attention
}  // namespace fusedattn
