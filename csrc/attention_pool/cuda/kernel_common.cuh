// Device helpers shared by the attention_pool forward and backward kernels: tiles, each
// sample's map statistics and the pixel-max winner.
#pragma once

#include <type_traits>

#include "../../common/cuda/convert.cuh"
#include "../../common/cuda/reduce.cuh"
#include "../../common/cuda/runtime.cuh"
#include "../math.h"
#include "kernels.h"

namespace fusedattn {
namespace attention_pool {
namespace cuda {

namespace fm = ::fusedattn::attention_pool::math;
using namespace ::fusedattn::cuda;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kChannelTile = 64;  // channels per tile
constexpr int kPixelTile = 64;    // pixels per tile

template <typename T>
__device__ __forceinline__ float load_logit(const T* a, int64_t sak, int64_t san, int64_t k,
                                            int64_t n) {
  return to_float(a[k * sak + n * san]);
}

// One sample's statistics into shared memory: s[k] (softmax over the maps of the global
// average of sigmoid(a[k, :])) and lse[k] (log-sum-exp of a[k, :] over the pixels). A warp per
// map, lanes over the pixels. Ends with a __syncthreads.
template <typename T>
__device__ void sample_statistics(const T* a, int64_t sak, int64_t san, int64_t K, int64_t N,
                                  float* s, float* lse) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t k = warp; k < K; k += kWarps) {
    float gap = 0.f;
    fm::SoftmaxState<float> st = fm::softmax_empty<float>();
    for (int64_t n = lane; n < N; n += 32) {
      const float x = load_logit(a, sak, san, k, n);
      gap += fm::sigmoid(x);
      st = fm::softmax_push(st, x);
    }
    gap = warp_sum(gap);
    st = warp_softmax_merge(st);
    if (lane == 0) {
      s[k] = gap / static_cast<float>(N);
      lse[k] = fm::softmax_logsumexp(st);
    }
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

// The pixel-max winner k*(n) and its candidate, scanning the maps upwards with torch.max's
// tie rule; the forward and the backward call exactly this, so they agree bit for bit.
template <typename T>
__device__ __forceinline__ int pixel_winner(const T* a, int64_t sak, int64_t san, int64_t K,
                                            int64_t n, const float* s, const float* lse,
                                            float* best_out) {
  float best = fm::weighted_prob(s[0], load_logit(a, sak, san, 0, n), lse[0]);
  int winner = 0;
  for (int64_t k = 1; k < K; ++k) {
    const float cand = fm::weighted_prob(s[k], load_logit(a, sak, san, k, n), lse[k]);
    if (fm::replaces_winner(cand, best)) {
      best = cand;
      winner = static_cast<int>(k);
    }
  }
  *best_out = best;
  return winner;
}

// A [kChannelTile][kPixelTile] tile of a (C, N) matrix with strides (sc, sn): loaded into or
// stored from shared memory [c][n] (row length kPixelTile + 1 against bank conflicts), with
// consecutive threads along whichever axis is contiguous in memory (coalesced for NCHW and
// channels_last alike; with one pixel, along the channels). Out-of-range elements load as 0 and
// are not stored.
constexpr int kTileStride = kPixelTile + 1;

template <typename T>
__device__ __forceinline__ void load_tile(const T* src, int64_t sc, int64_t sn, int64_t c0,
                                          int64_t C, int64_t n0, int64_t N, float* tile) {
  const bool channels_fast = sc == 1 && (sn != 1 || N == 1);
  for (int i = threadIdx.x; i < kChannelTile * kPixelTile; i += kThreads) {
    const int c = channels_fast ? i % kChannelTile : i / kPixelTile;
    const int n = channels_fast ? i / kChannelTile : i % kPixelTile;
    const int64_t gc = c0 + c, gn = n0 + n;
    tile[c * kTileStride + n] = (gc < C && gn < N) ? to_float(src[gc * sc + gn * sn]) : 0.f;
  }
}

template <typename T>
__device__ __forceinline__ void store_tile(const float* tile, T* dst, int64_t sc, int64_t sn,
                                           int64_t c0, int64_t C, int64_t n0, int64_t N) {
  const bool channels_fast = sc == 1 && (sn != 1 || N == 1);
  for (int i = threadIdx.x; i < kChannelTile * kPixelTile; i += kThreads) {
    const int c = channels_fast ? i % kChannelTile : i / kPixelTile;
    const int n = channels_fast ? i / kChannelTile : i % kPixelTile;
    const int64_t gc = c0 + c, gn = n0 + n;
    if (gc < C && gn < N) dst[gc * sc + gn * sn] = from_float<T>(tile[c * kTileStride + n]);
  }
}

// w[k][n] = s[k] sigmoid(a[k, n0 + n]) for one pixel tile, into shared memory [K][kPixelTile].
template <typename T>
__device__ __forceinline__ void load_weights(const T* a, int64_t sak, int64_t san, int64_t K,
                                             int64_t n0, int64_t N, const float* s, float* w) {
  for (int i = threadIdx.x; i < K * kPixelTile; i += kThreads) {
    const int64_t k = i / kPixelTile, n = n0 + i % kPixelTile;
    w[i] = n < N ? s[k] * fm::sigmoid(load_logit(a, sak, san, k, n)) : 0.f;
  }
}

// Calls fn(TypeTag<T>{}, std::integral_constant<int, M>{}) for the storage type of `dtype` and
// the number M of map accumulators per thread that covers K <= 4 * M maps.
template <typename Fn>
void dispatch_dtype_and_maps(DType dtype, int64_t K, Fn&& fn) {
  dispatch_dtype(dtype, [&](auto type) {
    if (K <= 8) return fn(type, std::integral_constant<int, 2>{});
    if (K <= 16) return fn(type, std::integral_constant<int, 4>{});
    if (K <= 32) return fn(type, std::integral_constant<int, 8>{});
    return fn(type, std::integral_constant<int, 16>{});
  });
}

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
