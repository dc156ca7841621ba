// Device code shared by the attention_pool forward and backward kernels: the feature tiles'
// copies, a sample's map statistics and the pixel-max winner. The
// forward and the backward call exactly these, so they agree bit for bit.
#pragma once

#include "../../common/cuda/convert.cuh"
#include "../../common/cuda/reduce.cuh"
#include "../../common/cuda/runtime.cuh"
#include "../../common/cuda/tile.cuh"
#include "../math.h"
#include "kernels.h"

#include <type_traits>

namespace fusedattn {
namespace attention_pool {
namespace cuda {

namespace fm = ::fusedattn::attention_pool::math;
using namespace ::fusedattn::cuda;

constexpr int kStatsWarps = kStatsThreads / 32;

// A block's place in a grid of (outer, middle, inner) blocks flattened into blockIdx.x: 32-bit
// divisions (grids stay under 2^31 blocks), not the 64-bit division routine.
struct BlockIndex3 {
  int64_t outer, middle, inner;
  __device__ __forceinline__ BlockIndex3(unsigned block, int64_t middles, int64_t inners) {
    const unsigned m = static_cast<unsigned>(middles), i = static_cast<unsigned>(inners);
    const unsigned rest = block % (m * i);
    outer = block / (m * i);
    middle = rest / i;
    inner = rest % i;
  }
};

// The copies of a block's feature tiles, the way the kernel's variant kLoad loads (plan.h): a
// cursor made once per block at its first tile (origin: the tile's element (0, 0)) and moved
// from tile to tile. p: the launch's arguments (sfc, sfn, N).
template <typename T, typename Tiles, FeatureLoad kLoad>
class FeatureTileCopy {
  using Copy = std::conditional_t<
      kLoad == FeatureLoad::kNchw, TileCopy<T, kChannelTile, kPixelTile, Tiles::kLdf, kTileThreads>,
      TileCopy<T, kPixelTile, kChannelTile, Tiles::kLdc, kTileThreads>>;
  static constexpr bool kTiled = kLoad == FeatureLoad::kNchw || kLoad == FeatureLoad::kNhwc;
  struct Origin {
    const T* origin;
    __device__ __forceinline__ void advance(int64_t elements) { origin += elements; }
  };
  std::conditional_t<kTiled, Copy, Origin> copy_;

  template <typename Args>
  __device__ __forceinline__ static auto make(const Args& p, const T* origin) {
    if constexpr (kLoad == FeatureLoad::kNchw) return Copy(origin, p.sfc);
    else if constexpr (kLoad == FeatureLoad::kNhwc) return Copy(origin, p.sfn);
    else return Origin{origin};
  }

 public:
  template <typename Args>
  __device__ __forceinline__ FeatureTileCopy(const Args& p, const T* origin)
      : copy_(make(p, origin)) {}

  __device__ __forceinline__ void advance(int64_t elements) { copy_.advance(elements); }

  // Issues the copies of the tile at the cursor into ft: `channels` and `pixels` exist from its
  // origin on (loop_count()s).
  template <typename Args>
  __device__ __forceinline__ void operator()(T* ft, const Args& p, int channels,
                                             int pixels) const {
    if constexpr (kLoad == FeatureLoad::kNchw) {
      copy_(ft, channels, pixels);
    } else if constexpr (kLoad == FeatureLoad::kNhwc) {
      copy_(ft, pixels, channels);
    } else if constexpr (kLoad == FeatureLoad::kFlat) {
      copy_span_async<T, kTileThreads, Tiles::kFlatCapacity>(
          ft, copy_.origin,
          (channels < 0 ? 0 : channels < kChannelTile ? channels : kChannelTile) *
              static_cast<int>(p.N));
    } else {
      copy_tile_scalar<T, kChannelTile, kPixelTile, Tiles::kLdf, kTileThreads>(
          ft, copy_.origin, p.sfc, p.sfn, channels, pixels);
    }
  }
};

template <typename T>
__device__ __forceinline__ float load_logit(const T* a, int64_t sak, int64_t san, int64_t k,
                                            int64_t n) {
  return to_float(a[k * sak + n * san]);
}

// One sample's statistics into shared memory: s[k] (softmax over the maps of the global
// average of sigmoid(a[k, :])) and lse[k] (log-sum-exp of a[k, :] over the pixels), by a block
// of kThreads. With K >= its warps a warp per map; with fewer maps, warps_per_map warps share
// a map's pixels and their partial sums meet in `partials` ([3][warps] floats) in warp order.
// Lanes load kUnroll pixels before using any, so that several loads are in flight; with `vector` (a map's
// pixels contiguous in whole 16-byte chunks from 16-byte aligned rows), kStatsVectorChunks
// chunks. With a `cache` (K x N, in shared memory, 16-byte aligned), the logits are also copied
// into it. Ends with a __syncthreads. (kUnroll and kVectors: fewer logits in flight, or no
// 16-byte path, for a kernel with fewer registers to spare.)
template <int kThreads, int kUnroll = kStatsUnroll, bool kVectors = true, typename T>
__device__ void sample_statistics(const T* a, int64_t sak, int64_t san, int64_t K, int64_t N,
                                  float* s, float* lse, float* partials, T* cache, bool vector) {
  constexpr int kChunks = kStatsVectorChunks;
  constexpr int kBlockWarps = kThreads / 32;
  constexpr int kV = 16 / static_cast<int>(sizeof(T));  // logits a chunk
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int warps_per_map = 1;
  while (warps_per_map * 2 * K <= kBlockWarps) warps_per_map *= 2;
  const int slot = warp % warps_per_map;
  const int64_t stride = 32 * warps_per_map;
  for (int64_t k = warp / warps_per_map; k < K; k += kBlockWarps / warps_per_map) {
    float gap = 0.f;
    fm::SoftmaxState<float> st = fm::softmax_empty<float>();
    const auto take = [&](float x) {
      gap += fm::sigmoid(x);
      st = fm::softmax_push(st, x);
    };
    if (kVectors && vector) {
      const uint4* row = reinterpret_cast<const uint4*>(a + k * sak);
      uint4* cached = cache != nullptr ? reinterpret_cast<uint4*>(cache + k * N) : nullptr;
      const int64_t chunks = N / kV;
      for (int64_t c0 = lane + 32 * slot; c0 < chunks; c0 += kChunks * stride) {
        uint4 v[kChunks];
#pragma unroll
        for (int u = 0; u < kChunks; ++u) {
          const int64_t c = c0 + u * stride;
          v[u] = c < chunks ? load_global_v4(row + c) : uint4{0, 0, 0, 0};
        }
#pragma unroll
        for (int u = 0; u < kChunks; ++u) {
          const int64_t c = c0 + u * stride;
          if (c >= chunks) continue;
          if (cached != nullptr) cached[c] = v[u];
          T x[kV];
          memcpy(x, &v[u], sizeof x);
#pragma unroll
          for (int i = 0; i < kV; ++i) take(to_float(x[i]));
        }
      }
    } else {
      for (int64_t n0 = lane + 32 * slot; n0 < N; n0 += kUnroll * stride) {
        float x[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int64_t n = n0 + u * stride;
          x[u] = n < N ? load_logit(a, sak, san, k, n) : 0.f;
          if (cache != nullptr && n < N) cache[k * N + n] = from_float<T>(x[u]);  // exact
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          if (n0 + u * stride < N) take(x[u]);
        }
      }
    }
    gap = warp_sum(gap);
    st = warp_softmax_merge(st);
    if (lane == 0) {
      if (warps_per_map == 1) {
        s[k] = gap / static_cast<float>(N);
        lse[k] = fm::softmax_logsumexp(st);
      } else {
        partials[warp] = gap;
        partials[kBlockWarps + warp] = st.max;
        partials[2 * kBlockWarps + warp] = st.sum;
      }
    }
  }
  __syncthreads();
  if (warps_per_map > 1 && threadIdx.x < K) {
    const int k = threadIdx.x;
    float gap = 0.f;
    fm::SoftmaxState<float> st = fm::softmax_empty<float>();
    for (int i = k * warps_per_map; i < (k + 1) * warps_per_map; ++i) {
      gap += partials[i];
      st = fm::softmax_merge(st, fm::SoftmaxState<float>{partials[kBlockWarps + i],
                                                         partials[2 * kBlockWarps + i]});
    }
    s[k] = gap / static_cast<float>(N);
    lse[k] = fm::softmax_logsumexp(st);
  }
  __syncthreads();
  if (warp == 0) {  // softmax over the K averages, the maps strided over the lanes
    fm::SoftmaxState<float> st = fm::softmax_empty<float>();
    for (int64_t k = lane; k < K; k += 32) st = fm::softmax_push(st, s[k]);
    st = warp_softmax_merge(st);
    const float lse_g = fm::softmax_logsumexp(st);
    __syncwarp();
    for (int64_t k = lane; k < K; k += 32) s[k] = fm::pixel_prob(s[k], lse_g);
  }
  __syncthreads();
}

// The pixels one thread of a block over a pixel tile takes: kPixels of them, n0 + i stride
// (stride: the block's threads, so that each of a warp's loads is of adjacent pixels), those
// past the last pixel (N) not loaded.
template <int kPixels>
struct ThreadPixels {
  int64_t n0, stride, N;
  __device__ __forceinline__ int64_t at(int i) const { return n0 + i * stride; }
  __device__ __forceinline__ bool in(int i) const { return at(i) < N; }
};

// Calls fn(k, x, y) for k = k_begin, ..., k_end - 1 in order, with x[i] = a[k, n_i] and
// y[i] = extra(k, n_i) (a float the caller reads per map and pixel, e.g. a gradient) for the
// thread's pixels n_i, loading kBatch maps of every pixel before using any: a kernel that
// walks its pixels' maps waits for ceil(maps / kBatch) round trips to memory, not one a
// map or a pixel. Nothing is read past the last pixel, and fn still sees every map (its values
// 0 there), so that a thread past the last pixel takes part in its warp's sums.
template <int kBatch, typename T, int kPixels, typename Extra, typename Fn>
__device__ __forceinline__ void for_each_map(const T* a, int64_t sak, int64_t san,
                                             const ThreadPixels<kPixels>& pixels,
                                             int64_t k_begin, int64_t k_end, Extra&& extra,
                                             Fn&& fn) {
  const int maps = static_cast<int>(k_end - k_begin);
  for (int i = 0; i < maps; i += kBatch) {
    float x[kBatch][kPixels], y[kBatch][kPixels];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
#pragma unroll
      for (int j = 0; j < kPixels; ++j) {
        x[u][j] = y[u][j] = 0.f;
        if (pixels.in(j) && i + u < maps) {
          x[u][j] = load_logit(a, sak, san, k_begin + i + u, pixels.at(j));
          y[u][j] = extra(k_begin + i + u, pixels.at(j));
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      if (i + u < maps) fn(k_begin + i + u, x[u], y[u]);
    }
  }
}

// Calls fn(k, a[k, n]) for k = 0, 1, ..., K - 1 in order (for_each_map with no extra value).
template <typename T, typename Fn>
__device__ __forceinline__ void for_each_logit(const T* a, int64_t sak, int64_t san, int64_t K,
                                               int64_t n, Fn&& fn) {
  for_each_map<kLogitBatch>(a, sak, san, ThreadPixels<1>{n, 0, n + 1}, 0, K,
               [](int64_t, int64_t) { return 0.f; },
               [&](int64_t k, const float (&x)[1], const float (&)[1]) { fn(k, x[0]); });
}

// The pixel-max winner: fed the maps' candidates s[k] p[k, n] upwards from k = 0, it keeps the
// winner with torch.max's tie rule.
struct PixelWinner {
  float best = 0.f;
  int winner = -1;
  __device__ __forceinline__ void add(int64_t k, float candidate) {
    if (winner < 0 || fm::replaces_winner(candidate, best)) {
      best = candidate;
      winner = static_cast<int>(k);
    }
  }
};

// Calls fn(std::integral_constant<int, tiles>, std::integral_constant<FeatureLoad, load>) for a
// plan's map tiles and feature load: the tiled kernels' compile-time variants.
template <typename Fn>
void dispatch_variant(int map_tiles, FeatureLoad load, Fn&& fn) {
  auto with_load = [&](auto tiles) {
    switch (load) {
      case FeatureLoad::kNchw:
        return fn(tiles, std::integral_constant<FeatureLoad, FeatureLoad::kNchw>{});
      case FeatureLoad::kNhwc:
        return fn(tiles, std::integral_constant<FeatureLoad, FeatureLoad::kNhwc>{});
      case FeatureLoad::kFlat:
        return fn(tiles, std::integral_constant<FeatureLoad, FeatureLoad::kFlat>{});
      case FeatureLoad::kScalar:
        return fn(tiles, std::integral_constant<FeatureLoad, FeatureLoad::kScalar>{});
    }
  };
  switch (map_tiles) {
    case 1: return with_load(std::integral_constant<int, 1>{});
    case 2: return with_load(std::integral_constant<int, 2>{});
    case 4: return with_load(std::integral_constant<int, 4>{});
    default: return with_load(std::integral_constant<int, kMaxMapTiles>{});
  }
}

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
