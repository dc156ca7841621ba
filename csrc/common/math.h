// Op-neutral per-element math shared by the CPU kernels (host compiler) and the CUDA kernels
// (nvcc): exp, sigmoid and a mergeable softmax state. Everything here is inline and __host__
// __device__ and depends on nothing but <math.h>, so the CPU test suite exercises exactly the
// formulas the GPU kernels run. `acc_t` is float for 16/32-bit inputs and double for float64.
// Each op's own formulas live beside it (csrc/<op>/math.h) and build on these.
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

// log(sum_n exp(x_n)) of a row: with it, one softmax probability costs one exp (softmax_prob).
template <typename acc_t>
FUSEDATTN_HD acc_t softmax_logsumexp(SoftmaxState<acc_t> state) {
  return state.max + log_(state.sum);
}

// exp(x - logsumexp): the probability of x in its softmax row, from the row's log-sum-exp.
template <typename acc_t>
FUSEDATTN_HD acc_t softmax_prob(acc_t x, acc_t logsumexp) {
  return exp_(x - logsumexp);
}

}  // namespace math
}  // namespace fusedattn
