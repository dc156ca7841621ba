// The two kernels that stream the B x C x N tensors (everything else is O(B (C + R)) or O(C R)):
//
// channel_attention_squeeze_kernel: per (sample, channel) sums over one split of the pixels, of x
//   (forward) or of grad_y * x (backward), into partials[b, split, c]. Pixel rows (unit pixel
//   stride, NCHW): a warp per channel row, 16-byte loads with scalar head and tail only where
//   the row is not 16-byte aligned. Channel rows (channels_last, or any other strides): a thread
//   per 16-byte vector of channels (one channel when they are not unit-stride or aligned), the
//   block's phases over the pixels summed in shared memory in a fixed order. No atomics.
// channel_attention_excite_kernel: out = in * scale[b, c] (+ shift[b, c]), grid-stride over the
//   chunk: 16-byte loads and stores over dense (NCHW or channels_last) tensors, scalar with
//   strides otherwise.
#include <cstring>

#include "../../common/cuda/convert.cuh"
#include "../../common/cuda/reduce.cuh"
#include "../../common/cuda/runtime.cuh"
#include "kernels.h"

namespace fusedattn {
namespace channel_attention {
namespace cuda {

using namespace ::fusedattn::cuda;

namespace {

template <typename T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));  // elements per 16-byte access

template <typename T>
__device__ __forceinline__ void load_vector(const T* p, float (&out)[kVec<T>]) {
  const uint4 raw = load_global_v4(reinterpret_cast<const uint4*>(p));
  T values[kVec<T>];
  memcpy(static_cast<void*>(values), &raw, sizeof raw);
#pragma unroll
  for (int j = 0; j < kVec<T>; ++j) out[j] = to_float(values[j]);
}

template <typename T>
__device__ __forceinline__ void store_vector(T* p, const float (&in)[kVec<T>]) {
  T values[kVec<T>];
#pragma unroll
  for (int j = 0; j < kVec<T>; ++j) values[j] = from_float<T>(in[j]);
  uint4 raw;
  memcpy(&raw, values, sizeof raw);
  store_global_v4(reinterpret_cast<uint4*>(p), raw);
}

__host__ __device__ __forceinline__ int64_t misalignment(const void* p) {
  return static_cast<int64_t>(reinterpret_cast<uintptr_t>(p) % 16);
}

template <typename T>
struct SqueezeArgs {
  const T* a;
  const T* b;  // nullptr: the squeeze of a alone
  Strides sa, sb;
  int64_t C, N, pixels_per_split, splits, units, units_per_block;
  float* partials;
};

// Pixel rows: warp w of the block sums channel (row block * kWarps + w) over the split.
template <typename T>
__device__ void squeeze_pixel_rows(const SqueezeArgs<T>& p, int64_t sample, int64_t row_block) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t c = row_block * kWarps + warp;
  const int64_t split = blockIdx.y;
  const int64_t n0 = split * p.pixels_per_split;
  const int64_t n1 = n0 + p.pixels_per_split < p.N ? n0 + p.pixels_per_split : p.N;
  if (c >= p.C) return;  // whole warps only: no collective below names an exited lane
  const T* ra = p.a + sample * p.sa.b + c * p.sa.c + n0;
  const T* rb = p.b != nullptr ? p.b + sample * p.sb.b + c * p.sb.c + n0 : nullptr;
  const int64_t len = n1 > n0 ? n1 - n0 : 0;
  // Elements before the first 16-byte boundary; vectors only where both rows share it.
  int64_t head = ((16 - misalignment(ra)) % 16) / static_cast<int64_t>(sizeof(T));
  const bool vectors = rb == nullptr || misalignment(ra) == misalignment(rb);
  if (!vectors || head > len) head = len;
  const int64_t n_vec = (len - head) / kVec<T>;
  float acc = 0.f;
  for (int64_t i = lane; i < head; i += 32) {
    acc += to_float(ra[i]) * (rb != nullptr ? to_float(rb[i]) : 1.f);
  }
  for (int64_t v = lane; v < n_vec; v += 32) {
    float xa[kVec<T>], xb[kVec<T>];
    load_vector(ra + head + v * kVec<T>, xa);
    if (rb != nullptr) {
      load_vector(rb + head + v * kVec<T>, xb);
    } else {
#pragma unroll
      for (int j = 0; j < kVec<T>; ++j) xb[j] = 1.f;
    }
#pragma unroll
    for (int j = 0; j < kVec<T>; ++j) acc += xa[j] * xb[j];
  }
  for (int64_t i = head + n_vec * kVec<T> + lane; i < len; i += 32) {
    acc += to_float(ra[i]) * (rb != nullptr ? to_float(rb[i]) : 1.f);
  }
  acc = warp_sum(acc);
  if (lane == 0) p.partials[(sample * p.splits + split) * p.C + c] = acc;
}

// Channel rows: thread t takes unit (unit block * units_per_block + t % units_per_block) of
// kUnit channels and every (phases)-th pixel of the split, phase t / units_per_block; the
// phases are then summed in shared memory in order.
template <typename T, int kUnit>
__device__ void squeeze_channel_units(const SqueezeArgs<T>& p, int64_t sample, int64_t unit_block) {
  float* phase_sums = dynamic_shared_memory<float>();  // [kThreads][kUnit]
  const int64_t upb = p.units_per_block, phases = kThreads / upb;
  const int64_t local = threadIdx.x % upb, phase = threadIdx.x / upb;
  const int64_t unit = unit_block * upb + local;
  const int64_t split = blockIdx.y;
  const int64_t n0 = split * p.pixels_per_split;
  const int64_t n1 = n0 + p.pixels_per_split < p.N ? n0 + p.pixels_per_split : p.N;
  float acc[kUnit];
#pragma unroll
  for (int j = 0; j < kUnit; ++j) acc[j] = 0.f;
  if (unit < p.units && phase < phases) {
    const int64_t c = unit * kUnit;
    const T* ra = p.a + sample * p.sa.b + c * p.sa.c;
    const T* rb = p.b != nullptr ? p.b + sample * p.sb.b + c * p.sb.c : nullptr;
    for (int64_t n = n0 + phase; n < n1; n += phases) {
      float xa[kUnit], xb[kUnit];
      if constexpr (kUnit == 1) {
        xa[0] = to_float(ra[n * p.sa.n]);
        xb[0] = rb != nullptr ? to_float(rb[n * p.sb.n]) : 1.f;
      } else {
        load_vector(ra + n * p.sa.n, xa);
        if (rb != nullptr) {
          load_vector(rb + n * p.sb.n, xb);
        } else {
#pragma unroll
          for (int j = 0; j < kUnit; ++j) xb[j] = 1.f;
        }
      }
#pragma unroll
      for (int j = 0; j < kUnit; ++j) acc[j] += xa[j] * xb[j];
    }
  }
#pragma unroll
  for (int j = 0; j < kUnit; ++j) phase_sums[threadIdx.x * kUnit + j] = acc[j];
  __syncthreads();
  if (phase == 0 && unit < p.units) {
    for (int64_t q = 1; q < phases; ++q) {  // fixed order: deterministic
#pragma unroll
      for (int j = 0; j < kUnit; ++j) acc[j] += phase_sums[(q * upb + local) * kUnit + j];
    }
#pragma unroll
    for (int j = 0; j < kUnit; ++j) {
      p.partials[(sample * p.splits + split) * p.C + unit * kUnit + j] = acc[j];
    }
  }
}

// grid (samples x row or unit blocks, splits), kThreads threads.
template <typename T, bool kPixelRows, int kUnit>
__global__ void __launch_bounds__(kThreads) channel_attention_squeeze_kernel(SqueezeArgs<T> p) {
  const int64_t blocks_per_sample = kPixelRows ? (p.C + kWarps - 1) / kWarps
                                               : (p.units + p.units_per_block - 1) / p.units_per_block;
  const int64_t sample = blockIdx.x / blocks_per_sample, block = blockIdx.x % blocks_per_sample;
  if constexpr (kPixelRows) {
    squeeze_pixel_rows(p, sample, block);
  } else {
    squeeze_channel_units<T, kUnit>(p, sample, block);
  }
}

template <typename T>
struct ExciteArgs {
  const T* in;
  T* out;
  Strides si, so;
  int64_t samples, C, N;
  const float* scale;  // (samples, C)
  const float* shift;  // (samples, C) or nullptr
  int dense;           // 0: strided, 1: dense NCHW, 2: dense channels_last (in and out alike)
};

// The (sample, channel) row of flat element e of a dense chunk.
template <typename T>
__device__ __forceinline__ int64_t row_of(const ExciteArgs<T>& p, int64_t e) {
  if (p.dense == 1) return e / p.N;
  return e / (p.C * p.N) * p.C + e % p.C;
}

template <typename T>
__device__ __forceinline__ float excite_value(const ExciteArgs<T>& p, float x, int64_t row) {
  return x * p.scale[row] + (p.shift != nullptr ? p.shift[row] : 0.f);
}

// grid-stride, kThreads threads.
template <typename T>
__global__ void __launch_bounds__(kThreads) channel_attention_excite_kernel(ExciteArgs<T> p) {
  const int64_t total = p.samples * p.C * p.N;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (p.dense == 0) {
    for (int64_t e = first; e < total; e += stride) {
      const int64_t b = e / (p.C * p.N), c = e / p.N % p.C, n = e % p.N;
      const float x = to_float(p.in[b * p.si.b + c * p.si.c + n * p.si.n]);
      p.out[b * p.so.b + c * p.so.c + n * p.so.n] = from_float<T>(excite_value(p, x, b * p.C + c));
    }
    return;
  }
  // Dense: elements [0, head) and [head + n_vec kVec, total) one at a time, the rest by vectors.
  int64_t head = ((16 - misalignment(p.in)) % 16) / static_cast<int64_t>(sizeof(T));
  if (misalignment(p.in) != misalignment(p.out) || head > total) head = total;
  const int64_t n_vec = (total - head) / kVec<T>;
  const int64_t tail = head + n_vec * kVec<T>;
  for (int64_t e = first; e < head; e += stride) {
    p.out[e] = from_float<T>(excite_value(p, to_float(p.in[e]), row_of(p, e)));
  }
  for (int64_t e = tail + first; e < total; e += stride) {
    p.out[e] = from_float<T>(excite_value(p, to_float(p.in[e]), row_of(p, e)));
  }
  for (int64_t v = first; v < n_vec; v += stride) {
    const int64_t e0 = head + v * kVec<T>;
    float x[kVec<T>];
    load_vector(p.in + e0, x);
    // The row of each element, stepped from the first one's (one division per vector).
    int64_t row = row_of(p, e0);
    int64_t inner = p.dense == 1 ? e0 % p.N : e0 % p.C;  // pixel (NCHW) or channel (NHWC)
    int64_t pixel = p.dense == 1 ? 0 : e0 / p.C % p.N;
#pragma unroll
    for (int j = 0; j < kVec<T>; ++j) {
      x[j] = excite_value(p, x[j], row);
      if (p.dense == 1) {
        if (++inner == p.N) inner = 0, ++row;
      } else if (++inner == p.C) {
        inner = 0;
        row -= p.C - 1;                           // back to channel 0 of this sample
        if (++pixel == p.N) pixel = 0, row += p.C;  // the next sample
      } else {
        ++row;
      }
    }
    store_vector(p.out + e0, x);
  }
}

bool dense_nchw(const Strides& s, int64_t C, int64_t N) {
  return (C == 1 || s.c == N) && (N == 1 || s.n == 1);
}
bool dense_channels_last(const Strides& s, int64_t C, int64_t N) {
  return (C == 1 || s.c == 1) && (N == 1 || s.n == C);
}
bool same_strides(const Strides& a, const Strides& b) {
  return a.b == b.b && a.c == b.c && a.n == b.n;
}

dim3 grid_of(const LaunchGeometry& g) {
  return dim3(static_cast<unsigned>(g.grid_x), static_cast<unsigned>(g.grid_y));
}

}  // namespace

void launch_squeeze(const void* a, const Strides& sa, const void* b, const Strides& sb,
                    int64_t samples, int64_t C, int64_t N, const Plan& plan, float* partials,
                    DType dtype, cudaStream_t stream) {
  dispatch_dtype(dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    const LaunchGeometry g = squeeze_geometry(plan, samples, C, sizeof(T));
    const int64_t unit = plan.vector_units ? kVec<T> : 1;
    SqueezeArgs<T> args{static_cast<const T*>(a), static_cast<const T*>(b), sa, sb, C, N,
                        plan.pixels_per_split, plan.splits, (C + unit - 1) / unit, 1, partials};
    while (args.units_per_block < args.units && args.units_per_block < kThreads) {
      args.units_per_block *= 2;
    }
    if (plan.pixel_rows) {
      launch(channel_attention_squeeze_kernel<T, true, 1>, grid_of(g), dim3(g.threads),
             g.shared_bytes, stream, args);
    } else if (plan.vector_units) {
      launch(channel_attention_squeeze_kernel<T, false, kVec<T>>, grid_of(g), dim3(g.threads),
             g.shared_bytes, stream, args);
    } else {
      launch(channel_attention_squeeze_kernel<T, false, 1>, grid_of(g), dim3(g.threads),
             g.shared_bytes, stream, args);
    }
  });
}

void launch_excite(const void* in, const Strides& si, void* out, const Strides& so,
                   int64_t samples, int64_t C, int64_t N, const float* scale, const float* shift,
                   DType dtype, int sm_count, cudaStream_t stream) {
  dispatch_dtype(dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    int dense = 0;
    if (same_strides(si, so) && (samples == 1 || si.b == C * N)) {
      dense = dense_nchw(si, C, N) ? 1 : dense_channels_last(si, C, N) ? 2 : 0;
    }
    ExciteArgs<T> args{static_cast<const T*>(in), static_cast<T*>(out), si, so, samples, C, N,
                       scale, shift, dense};
    const LaunchGeometry g = excite_geometry(samples * C * N, sizeof(T), sm_count);
    launch(channel_attention_excite_kernel<T>, grid_of(g), dim3(g.threads), g.shared_bytes,
           stream, args);
  });
}

}  // namespace cuda
}  // namespace channel_attention
}  // namespace fusedattn
