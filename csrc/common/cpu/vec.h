// SIMD and storage-conversion helpers of the CPU kernels, compiled once per instruction set:
// include after common/cpu/target_<isa>.h. Everything has internal linkage in the ISA's own
// namespace (fusedattn::cpu::<isa>), so no inline code compiled for one instruction set can be
// picked by the linker for another. GCC/Clang vector extensions: the same source becomes SSE,
// AVX2 or AVX-512 code depending on the target flags.
#pragma once

#ifndef FUSEDATTN_CPU_ISA
#error "include common/cpu/target_<isa>.h before common/cpu/vec.h"
#endif

#include "storage.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

namespace fusedattn {
namespace cpu {
namespace FUSEDATTN_CPU_ISA {
namespace {

inline float bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
inline uint32_t float_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

// IEEE half <-> float without branches on the value (so loops of them vectorize): the exponent
// is rebiased by a float multiply, subnormals by a magic-number subtraction.
inline float to_acc(Half h) {
  const uint32_t w = static_cast<uint32_t>(h.bits) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const float normal = bits_to_float((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float subnormal = bits_to_float((two_w >> 17) | (126u << 23)) - 0.5f;
  return bits_to_float(sign | (two_w < (1u << 27) ? float_to_bits(subnormal) : float_to_bits(normal)));
}
inline float to_acc(BFloat16 h) { return bits_to_float(static_cast<uint32_t>(h.bits) << 16); }
inline float to_acc(float x) { return x; }
inline double to_acc(double x) { return x; }

template <typename scalar_t> scalar_t from_acc(typename Acc<scalar_t>::type x);
template <> inline float from_acc<float>(float x) { return x; }
template <> inline double from_acc<double>(double x) { return x; }
template <> inline BFloat16 from_acc<BFloat16>(float x) {  // round to nearest even
  const uint32_t u = float_to_bits(x);
  if (x != x) return BFloat16{0x7FC0};
  return BFloat16{static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16)};
}
template <> inline Half from_acc<Half>(float x) {  // round to nearest even, inf/NaN kept
  const uint32_t w = float_to_bits(x);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  float base = (fabsf(x) * 0x1.0p+112f) * 0x1.0p-110f;
  base = bits_to_float((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = float_to_bits(base);
  const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
  return Half{static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign))};
}

// SIMD vectors of the translation unit's width.
typedef float vfloat __attribute__((vector_size(FUSEDATTN_CPU_VEC_BYTES)));
typedef double vdouble __attribute__((vector_size(FUSEDATTN_CPU_VEC_BYTES)));
template <typename T> struct VecOf;
template <> struct VecOf<float> { using type = vfloat; };
template <> struct VecOf<double> { using type = vdouble; };

template <typename V, typename T>
V loadu(const T* p) {
  V v;
  memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V>
auto hsum(V v) {
  constexpr int L = sizeof(V) / sizeof(v[0]);
  decltype(v[0] + 0) lanes[L];
  memcpy(lanes, &v, sizeof(V));
  for (int width = L / 2; width > 0; width /= 2) {
    for (int i = 0; i < width; ++i) lanes[i] += lanes[i + width];
  }
  return lanes[0];
}

// out[j] = sum_i w[j * ldw + i] x[i] for j < KB: KB dot products in one sweep over x, with
// independent accumulators (one dot at a time would wait on the FMA latency and pay a
// horizontal sum per short row).
template <int KB, typename acc_t>
void dot_rows(const acc_t* __restrict w, int64_t ldw, const acc_t* __restrict x, int64_t n,
              acc_t* __restrict out) {
  using V = typename VecOf<acc_t>::type;
  constexpr int64_t L = sizeof(V) / sizeof(acc_t);
  V acc[KB];
  for (int j = 0; j < KB; ++j) acc[j] = V{};
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V xv = loadu<V>(x + i);
    for (int j = 0; j < KB; ++j) acc[j] += loadu<V>(w + j * ldw + i) * xv;
  }
  for (int j = 0; j < KB; ++j) {
    acc_t sum = hsum(acc[j]);
    for (int64_t t = i; t < n; ++t) sum += w[j * ldw + t] * x[t];
    out[j] = sum;
  }
}

// out[k] = sum_i w[k * ldw + i] x[i] for k < rows, in blocks of 8, 4, 2, 1 rows.
template <typename acc_t>
void dot_many(const acc_t* w, int64_t ldw, const acc_t* x, int64_t n, int64_t rows, acc_t* out) {
  int64_t k = 0;
  for (; k + 8 <= rows; k += 8) dot_rows<8>(w + k * ldw, ldw, x, n, out + k);
  if (rows - k >= 4) dot_rows<4>(w + k * ldw, ldw, x, n, out + k), k += 4;
  if (rows - k >= 2) dot_rows<2>(w + k * ldw, ldw, x, n, out + k), k += 2;
  if (rows - k >= 1) dot_rows<1>(w + k * ldw, ldw, x, n, out + k);
}

template <typename acc_t>
acc_t dot(const acc_t* x, const acc_t* y, int64_t n) {
  acc_t out;
  dot_rows<1>(x, 0, y, n, &out);
  return out;
}

// y += alpha * x
template <typename acc_t>
void axpy(acc_t alpha, const acc_t* __restrict x, acc_t* __restrict y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <typename scalar_t, typename acc_t>
void load_row(const scalar_t* __restrict src, int64_t stride, int64_t n, acc_t* __restrict dst) {
  if (stride == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = to_acc(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = to_acc(src[i * stride]);
  }
}

// The row as acc_t values: the row itself when it already is (no copy), else converted into buf.
template <typename scalar_t, typename acc_t>
const acc_t* row_view(const scalar_t* src, int64_t stride, int64_t n, acc_t* buf) {
  if constexpr (__is_same(scalar_t, acc_t)) {
    if (stride == 1) return reinterpret_cast<const acc_t*>(src);
  }
  load_row(src, stride, n, buf);
  return buf;
}

template <typename scalar_t, typename acc_t>
void store_row(const acc_t* __restrict src, int64_t n, scalar_t* __restrict dst, int64_t stride) {
  if (stride == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = from_acc<scalar_t>(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i * stride] = from_acc<scalar_t>(src[i]);
  }
}

// channels_last features (unit channel stride), or a single pixel: rows of C channels per
// pixel are contiguous.
inline bool rows_are_channels(int64_t stride_c, int64_t stride_n, int64_t N) {
  return stride_c == 1 && (stride_n != 1 || N == 1);
}

}  // namespace
}  // namespace FUSEDATTN_CPU_ISA
}  // namespace cpu
}  // namespace fusedattn
