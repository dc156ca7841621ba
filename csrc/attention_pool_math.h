// Per-element math of fused attention pooling (../shared/SPEC.md), shared by the CPU kernels
// (host compiler) and the CUDA kernels (nvcc). Everything here is inline and __host__
// __device__ and depends on nothing but <math.h>, so the CPU test suite exercises exactly the
// formulas the GPU kernels run. `acc_t` is float for 16/32-bit inputs and double for float64.
#pragma once

#include <math.h>
#include <stdint.h>

// A translation unit may predefine FUSEDATTN_HD (the per-ISA CPU kernels use `static inline`, so
// that code compiled with different target flags is never merged by the linker).
#ifndef FUSEDATTN_HD
#if defined(__CUDACC__) || defined(__HIPCC__)
#define FUSEDATTN_HD __host__ __device__ __forceinline__
#else
#define FUSEDATTN_HD inline
#endif
#endif

namespace fusedattn {
namespace math {

#if defined(__CUDA_ARCH__)
FUSEDATTN_HD float exp_(float x) { return expf(x); }
#else
// expf on the CPU as branch-free arithmetic, so that loops of it vectorize (a call to libm's
// expf does not): x = n ln2 + r with |r| <= ln2/2, exp(r) by the Cephes degree-6 polynomial,
// 2^n as two exact powers of two (each a normal float, so results down to the subnormals are
// right). Within 1 ulp of expf (tests/cpp/math_header_check.cpp sweeps every float); 0 below
// -104, inf above ln(FLT_MAX), NaN kept. (The rounding constant needs IEEE evaluation order;
// this code is never built with -ffast-math.)
FUSEDATTN_HD float exp_(float x) {
  // Clamped with selects, not fminf/fmaxf (which become libm calls under IEEE semantics).
  const float lo = x < -104.0f ? -104.0f : x;
  const float xc = lo > 88.7228391f ? 88.7228391f : lo;
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t half = ni >> 1;  // floor(n / 2)
  union { uint32_t u; float f; } s1, s2;
  s1.u = static_cast<uint32_t>(half + 127) << 23;
  s2.u = static_cast<uint32_t>(ni - half + 127) << 23;
  const float y = (p * s1.f) * s2.f;
  return x != x ? x : (x < -104.0f ? 0.0f : (x > 88.7228391f ? INFINITY : y));
}
#endif
FUSEDATTN_HD double exp_(double x) { return exp(x); }
FUSEDATTN_HD float log_(float x) { return logf(x); }
FUSEDATTN_HD double log_(double x) { return log(x); }

// alpha of SPEC.md: 1 for pool="sum" (the paper), 1/N for pool="mean".
template <typename acc_t>
FUSEDATTN_HD acc_t pool_scale(bool mean_pool, int64_t N) {
  return mean_pool ? acc_t(1) / acc_t(N) : acc_t(1);
}

// sigmoid(x) = 1 / (1 + e^-x). For x << 0, e^-x overflows to +inf and the result is a correct 0.
template <typename acc_t>
FUSEDATTN_HD acc_t sigmoid(acc_t x) {
  return acc_t(1) / (acc_t(1) + exp_(-x));
}

// Running (max, sum of exp(x - max)) of a softmax row, one element at a time or by merging two
// partial states, so a row can be reduced in any order (serially on the CPU, by a tree of threads
// on the GPU). The empty state is (-inf, 0).
template <typename acc_t>
struct SoftmaxState {
  acc_t max;
  acc_t sum;
};

template <typename acc_t>
FUSEDATTN_HD SoftmaxState<acc_t> softmax_empty() {
  return {-INFINITY, acc_t(0)};
}

template <typename acc_t>
FUSEDATTN_HD SoftmaxState<acc_t> softmax_merge(SoftmaxState<acc_t> x, SoftmaxState<acc_t> y) {
  // Empty states first: exp(-inf - -inf) would be NaN.
  if (y.sum == acc_t(0)) return x;
  if (x.sum == acc_t(0)) return y;
  if (x.max < y.max) {
    SoftmaxState<acc_t> t = x;
    x = y;
    y = t;
  }
  return {x.max, x.sum + y.sum * exp_(y.max - x.max)};
}

template <typename acc_t>
FUSEDATTN_HD SoftmaxState<acc_t> softmax_push(SoftmaxState<acc_t> state, acc_t x) {
  return softmax_merge(state, SoftmaxState<acc_t>{x, acc_t(1)});
}

// log(sum_n exp(a_n)): the one number per (b, k) the backward needs to recompute p = exp(a - lse).
template <typename acc_t>
FUSEDATTN_HD acc_t softmax_logsumexp(SoftmaxState<acc_t> state) {
  return state.max + log_(state.sum);
}

// p[k,n] of SPEC.md: the raw map as a distribution over pixels, from its saved log-sum-exp.
template <typename acc_t>
FUSEDATTN_HD acc_t pixel_prob(acc_t logit, acc_t logsumexp) {
  return exp_(logit - logsumexp);
}

// The candidate of map k at one pixel in D = sum_n max_k s[k] p[k,n].
template <typename acc_t>
FUSEDATTN_HD acc_t weighted_prob(acc_t importance, acc_t logit, acc_t logsumexp) {
  return importance * pixel_prob(logit, logsumexp);
}

// Pixel-max selection with torch.max's tie rule: scanning k upwards, a later map replaces the
// current winner only when strictly larger, so the LOWEST k attaining the max wins (SPEC.md).
template <typename acc_t>
FUSEDATTN_HD bool replaces_winner(acc_t candidate, acc_t best) {
  return candidate > best;
}

// gg[k] = s[k] * (gs_tot[k] - sum_j s[j] gs_tot[j]): the backward of the softmax over K.
template <typename acc_t>
FUSEDATTN_HD acc_t importance_softmax_grad(acc_t importance, acc_t grad_total, acc_t weighted_sum) {
  return importance * (grad_total - weighted_sum);
}

// gsig[k,n] = s[k] gw[k,n] + gg[k] / N: the recalibration w = s * sig and the average pooling.
template <typename acc_t>
FUSEDATTN_HD acc_t sigmoid_map_grad(acc_t importance, acc_t grad_w, acc_t grad_gap, acc_t inv_n) {
  return importance * grad_w + grad_gap * inv_n;
}

// ga[k,n] = gsig sig (1 - sig) + p (gp - sum_m p gp): through the sigmoid and the pixel softmax.
template <typename acc_t>
FUSEDATTN_HD acc_t logit_grad(acc_t grad_sig, acc_t sig, acc_t prob, acc_t grad_prob,
                              acc_t prob_dot_grad) {
  return grad_sig * sig * (acc_t(1) - sig) + prob * (grad_prob - prob_dot_grad);
}

}  // namespace math
}  // namespace fusedattn
