// The two kernels that stream the B x C x N tensors (everything else is O(B (C + R)) or O(C R)):
//
// channel_attention_squeeze_kernel: per (sample, channel) sums over one split of the pixels, of x
//   (forward) or of grad_y * x (backward), into partials[b, split, c]. Variants (plan.h's
//   SqueezeVariant):
//   pixel_rows (unit pixel stride, NCHW; a's and b's rows start at the same offset within 16
//     bytes): row_lanes lanes per channel row (kThreads / row_lanes rows a block), each lane
//     kRowVectors 16-byte vectors per step; the row's head (before its first 16-byte boundary)
//     and tail (after its last) are single predicated accesses outside the loop.
//   pixel_rows_misaligned (a's and b's rows differ in alignment): a warp per row, 16-byte loads
//     only where both share the alignment, else element by element.
//   channel_vectors / channels (channels_last, or any other strides): a thread per 16-byte
//     vector of channels (one channel when they are not unit-stride or aligned), the block's
//     phases over the pixels summed in shared memory in a fixed order. No atomics.
// channel_attention_excite_kernel: out = in * scale[b, c] (+ shift[b, c]), grid-stride over the
//   chunk. Variants (plan.h's ExciteVariant): nchw_vectors and channels_last_vectors (dense,
//   16-byte aligned): kExciteVectors 16-byte vectors per thread per step, scale and shift read as
//   float4s, the row of each vector stepped without division; strided: element by element.
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
  int64_t C, N, pixels_per_split, splits, units, units_per_block, row_lanes;
  float* partials;
};

// The sum over each aligned group of `lanes` lanes (a power of 2 up to 32), in every lane of it;
// every lane of the warp takes part.
__device__ __forceinline__ float group_sum(float x, int lanes) {
  for (int o = lanes / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// Pixel rows whose a and b rows share their alignment: the row_lanes lanes of group g of the
// block sum channel (row block * rows per block + g) over the split (blockDim.x / row_lanes rows
// per block: blocks of fewer threads than kThreads for small calls).
template <typename T>
__device__ void squeeze_pixel_rows(const SqueezeArgs<T>& p, int64_t sample, int64_t row_block) {
  // Head and tail elements (fewer than a vector each) per lane: kMinRowLanes or more lanes a row.
  constexpr int kEdges = (kVec<T> - 1 + kMinRowLanes - 1) / kMinRowLanes;
  const int lanes = static_cast<int>(p.row_lanes);
  const int group = threadIdx.x / lanes, lane = threadIdx.x % lanes;
  const int64_t c = row_block * (blockDim.x / lanes) + group;
  const int64_t split = blockIdx.y;
  const int64_t n0 = split * p.pixels_per_split;
  const int64_t n1 = n0 + p.pixels_per_split < p.N ? n0 + p.pixels_per_split : p.N;
  // Groups past the last channel sum nothing: no lane returns before the group sums below.
  const int64_t len = c < p.C && n1 > n0 ? n1 - n0 : 0;
  const T* ra = p.a + sample * p.sa.b + (c < p.C ? c : 0) * p.sa.c + n0;
  const T* rb = p.b != nullptr ? p.b + sample * p.sb.b + (c < p.C ? c : 0) * p.sb.c + n0 : nullptr;
  int64_t head = ((16 - misalignment(ra)) % 16) / static_cast<int64_t>(sizeof(T));
  if (head > len) head = len;
  const int64_t n_vec = (len - head) / kVec<T>;
  const int64_t tail = head + n_vec * kVec<T>;  // [tail, len): fewer than kVec<T> elements
  float acc = 0.f;
#pragma unroll
  for (int k = 0; k < kEdges; ++k) {
    const int64_t i = lane + k * lanes;
    if (i < head) acc += to_float(ra[i]) * (rb != nullptr ? to_float(rb[i]) : 1.f);
    if (tail + i < len) acc += to_float(ra[tail + i]) * (rb != nullptr ? to_float(rb[tail + i]) : 1.f);
  }
  const T* va = ra + head;
  const T* vb = rb != nullptr ? rb + head : nullptr;
  for (int64_t v = lane; v < n_vec; v += kRowVectors * lanes) {
    // Both vectors' loads before any use (the second re-reads the first, weighted 0, past the end).
    const bool second = v + lanes < n_vec;
    const int64_t v1 = second ? v + lanes : v;
    float xa0[kVec<T>], xa1[kVec<T>], xb0[kVec<T>], xb1[kVec<T>];
    load_vector(va + v * kVec<T>, xa0);
    load_vector(va + v1 * kVec<T>, xa1);
    if (vb != nullptr) {
      load_vector(vb + v * kVec<T>, xb0);
      load_vector(vb + v1 * kVec<T>, xb1);
    } else {
#pragma unroll
      for (int j = 0; j < kVec<T>; ++j) xb0[j] = xb1[j] = 1.f;
    }
    const float w1 = second ? 1.f : 0.f;
#pragma unroll
    for (int j = 0; j < kVec<T>; ++j) acc += xa0[j] * xb0[j] + w1 * (xa1[j] * xb1[j]);
  }
  acc = group_sum(acc, lanes);
  if (lane == 0 && c < p.C) p.partials[(sample * p.splits + split) * p.C + c] = acc;
}

// Pixel rows whose a and b rows differ in alignment: warp w of the block sums channel
// (row block * kWarps + w) over the split.
template <typename T>
__device__ void squeeze_pixel_rows_misaligned(const SqueezeArgs<T>& p, int64_t sample,
                                              int64_t row_block) {
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

// grid (samples x row or unit blocks, splits), kThreads threads; kVariant: plan.h's
// SqueezeVariant.
template <typename T, int kVariant>
__global__ void __launch_bounds__(kThreads) channel_attention_squeeze_kernel(SqueezeArgs<T> p) {
  const int64_t rows_per_block =
      kVariant == kSqueezePixelRows ? blockDim.x / p.row_lanes : kWarps;
  const int64_t blocks_per_sample =
      kVariant >= kSqueezePixelRows ? (p.C + rows_per_block - 1) / rows_per_block
                                    : (p.units + p.units_per_block - 1) / p.units_per_block;
  const int64_t sample = blockIdx.x / blocks_per_sample, block = blockIdx.x % blocks_per_sample;
  if constexpr (kVariant == kSqueezePixelRows) {
    squeeze_pixel_rows(p, sample, block);
  } else if constexpr (kVariant == kSqueezePixelRowsMisaligned) {
    squeeze_pixel_rows_misaligned(p, sample, block);
  } else {
    squeeze_channel_units<T, kVariant == kSqueezeChannelVectors ? kVec<T> : 1>(p, sample, block);
  }
}

template <typename T>
struct ExciteArgs {
  const T* in;
  T* out;
  Strides si, so;
  int64_t samples, C, N;
  const float* scale;  // (samples, C), 16-byte aligned, padded by 4 floats
  const float* shift;  // (samples, C) likewise, or nullptr
};

__device__ __forceinline__ float excite_value(float x, float scale, float shift) {
  return x * scale + shift;
}

// Strided: element by element.
template <typename T>
__device__ void excite_strided(const ExciteArgs<T>& p) {
  const int64_t total = p.samples * p.C * p.N;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += stride) {
    const int64_t b = e / (p.C * p.N), c = e / p.N % p.C, n = e % p.N;
    const int64_t row = b * p.C + c;
    const float x = to_float(p.in[b * p.si.b + c * p.si.c + n * p.si.n]);
    p.out[b * p.so.b + c * p.so.c + n * p.so.n] = from_float<T>(
        excite_value(x, p.scale[row], p.shift != nullptr ? p.shift[row] : 0.f));
  }
}

// Where flat element e of a dense chunk is: NCHW: its row (b C + c) and pixel; channels_last:
// its channel, pixel and sample. Moved by a fixed distance without division (the distance's
// quotients are taken once).
template <int kVariant>
struct Position {
  int64_t a, n, b;  // NCHW: a = the row, n = the pixel; channels_last: a = c, n, b
};
template <int kVariant>
struct Step {
  int64_t a, n, b;
};

template <int kVariant>
__device__ __forceinline__ Position<kVariant> position_of(int64_t e, int64_t C, int64_t N) {
  if constexpr (kVariant == kExciteNchwVectors) return {e / N, e % N, 0};
  return {e % C, e / C % N, e / (C * N)};
}

template <int kVariant>
__device__ __forceinline__ Step<kVariant> step_of(int64_t d, int64_t C, int64_t N) {
  const Position<kVariant> q = position_of<kVariant>(d, C, N);
  return {q.a, q.n, q.b};
}

template <int kVariant>
__device__ __forceinline__ Position<kVariant> advance(Position<kVariant> p, const Step<kVariant>& d,
                                                      int64_t C, int64_t N) {
  if constexpr (kVariant == kExciteNchwVectors) {
    p.a += d.a, p.n += d.n;
    if (p.n >= N) p.n -= N, ++p.a;
  } else {
    p.a += d.a, p.n += d.n, p.b += d.b;
    if (p.a >= C) p.a -= C, ++p.n;
    if (p.n >= N) p.n -= N, ++p.b;
  }
  return p;
}

// Float k (0..3) of a.
__device__ __forceinline__ float pick(const float4& a, int64_t k) {
  return k == 0 ? a.x : k == 1 ? a.y : k == 2 ? a.z : a.w;
}

// The float4 holding f[i] and its float i of it.
__device__ __forceinline__ float float_of(const float* f, int64_t i) {
  return pick(load_global_v4(reinterpret_cast<const float4*>(f + (i & ~int64_t{3}))), i & 3);
}

// The scale (or shift) of each element of the vector at p: float4 loads only.
template <typename T, int kVariant>
__device__ __forceinline__ void vector_factors(const float* f, const Position<kVariant>& p,
                                               int64_t C, int64_t N, float (&out)[kVec<T>]) {
  if constexpr (kVariant == kExciteNchwVectors) {
    // The vector's rows: p.a and (N >= kVec) at most the next one (the float4 past the last row
    // is the workspace's padding).
    const float first = float_of(f, p.a), next = float_of(f, p.a + 1);
#pragma unroll
    for (int j = 0; j < kVec<T>; ++j) out[j] = p.n + j < N ? first : next;
  } else {
    // The vector's kVec channels of one pixel: row b C + c, a multiple of kVec (C is).
    const float* row = f + p.b * C + p.a;
#pragma unroll
    for (int q = 0; q < kVec<T> / 4; ++q) {
      const float4 v = load_global_v4(reinterpret_cast<const float4*>(row) + q);
      out[4 * q] = v.x, out[4 * q + 1] = v.y, out[4 * q + 2] = v.z, out[4 * q + 3] = v.w;
    }
  }
}

template <typename T, int kVariant>
__device__ __forceinline__ void excite_vector(const ExciteArgs<T>& p, const Position<kVariant>& at,
                                              float (&x)[kVec<T>]) {
  float scale[kVec<T>], shift[kVec<T>];
  vector_factors<T, kVariant>(p.scale, at, p.C, p.N, scale);
  if (p.shift != nullptr) {
    vector_factors<T, kVariant>(p.shift, at, p.C, p.N, shift);
  } else {
#pragma unroll
    for (int j = 0; j < kVec<T>; ++j) shift[j] = 0.f;
  }
#pragma unroll
  for (int j = 0; j < kVec<T>; ++j) x[j] = excite_value(x[j], scale[j], shift[j]);
}

// Dense and 16-byte aligned (plan.cpp's excite_variant): thread t of the grid (G threads)
// takes vectors v and v + G, then v + 2G and v + 3G, ...
template <typename T, int kVariant>
__device__ void excite_vectors(const ExciteArgs<T>& p) {
  const int64_t n_vec = p.samples * p.C * p.N / kVec<T>;
  const int64_t threads = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (v >= n_vec) return;
  const Step<kVariant> to_second = step_of<kVariant>(threads * kVec<T>, p.C, p.N);
  const Step<kVariant> to_next = step_of<kVariant>(kExciteVectors * threads * kVec<T>, p.C, p.N);
  Position<kVariant> at = position_of<kVariant>(v * kVec<T>, p.C, p.N);
  for (; v < n_vec; v += kExciteVectors * threads) {
    // Both vectors' loads before any use (the second re-reads the first past the end, unstored).
    const bool second = v + threads < n_vec;
    const int64_t v1 = second ? v + threads : v;
    Position<kVariant> at1 = advance(at, to_second, p.C, p.N);
    at1.a = second ? at1.a : at.a, at1.n = second ? at1.n : at.n, at1.b = second ? at1.b : at.b;
    float x0[kVec<T>], x1[kVec<T>];
    load_vector(p.in + v * kVec<T>, x0);
    load_vector(p.in + v1 * kVec<T>, x1);
    excite_vector(p, at, x0);
    excite_vector(p, at1, x1);
    store_vector(p.out + v * kVec<T>, x0);
    if (second) store_vector(p.out + v1 * kVec<T>, x1);
    at = advance(at, to_next, p.C, p.N);
  }
}

// grid-stride; kVariant: plan.h's ExciteVariant.
template <typename T, int kVariant>
__global__ void __launch_bounds__(kThreads) channel_attention_excite_kernel(ExciteArgs<T> p) {
  if constexpr (kVariant == kExciteStrided) {
    excite_strided(p);
  } else {
    excite_vectors<T, kVariant>(p);
  }
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
                        plan.pixels_per_split, plan.splits, (C + unit - 1) / unit, 1,
                        plan.row_lanes, partials};
    while (args.units_per_block < args.units && args.units_per_block < kThreads) {
      args.units_per_block *= 2;
    }
    const auto run = [&](auto kernel) {
      launch(kernel, grid_of(g), dim3(g.threads), g.shared_bytes, stream, args);
    };
    switch (squeeze_variant(plan)) {
      case kSqueezePixelRows: run(channel_attention_squeeze_kernel<T, kSqueezePixelRows>); break;
      case kSqueezePixelRowsMisaligned:
        run(channel_attention_squeeze_kernel<T, kSqueezePixelRowsMisaligned>);
        break;
      case kSqueezeChannelVectors:
        run(channel_attention_squeeze_kernel<T, kSqueezeChannelVectors>);
        break;
      default: run(channel_attention_squeeze_kernel<T, kSqueezeChannels>); break;
    }
  });
}

void launch_excite(const void* in, const Strides& si, void* out, const Strides& so,
                   int64_t samples, int64_t C, int64_t N, const float* scale, const float* shift,
                   DType dtype, int sm_count, cudaStream_t stream) {
  dispatch_dtype(dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    const ExciteVariant variant =
        excite_variant(si, reinterpret_cast<uintptr_t>(in), so, reinterpret_cast<uintptr_t>(out),
                       samples, C, N, sizeof(T));
    ExciteArgs<T> args{static_cast<const T*>(in), static_cast<T*>(out), si, so, samples, C, N,
                       scale, shift};
    const LaunchGeometry g = excite_geometry(samples * C * N, sizeof(T), sm_count, variant);
    const auto run = [&](auto kernel) {
      launch(kernel, grid_of(g), dim3(g.threads), g.shared_bytes, stream, args);
    };
    switch (variant) {
      case kExciteNchwVectors: run(channel_attention_excite_kernel<T, kExciteNchwVectors>); break;
      case kExciteChannelsLastVectors:
        run(channel_attention_excite_kernel<T, kExciteChannelsLastVectors>);
        break;
      default: run(channel_attention_excite_kernel<T, kExciteStrided>); break;
    }
  });
}

}  // namespace cuda
}  // namespace channel_attention
}  // namespace fusedattn
