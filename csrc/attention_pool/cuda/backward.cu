// The backward: one pass over the features, then the small [K, N] epilogue. Deterministic: no
// atomics; every sum runs in a fixed order.
//
// 1. grid (B, splits): per pixel tile, the block reads its channel tiles of f once and writes
//    gf[c, n] = alpha sum_k gv[k, c] w[k, n] while accumulating its share of
//    gw[k, n] = alpha sum_c gv[k, c] f[c, n] in registers, stored to gw_splits[b, split].
// 2. grid (B): sums the splits' gw and applies the spec's recalibration, importance-softmax and
//    diversity gradients, writing grad_logits.
#include "kernel_common.cuh"

namespace fusedattn {
namespace attention_pool {
namespace cuda {
namespace {

constexpr int kMapGroups = kThreads / kPixelTile;            // 4 groups of map rows
constexpr int kPixelsPerThread = kPixelTile * kChannelTile / kThreads;  // 16 gf outputs

template <typename T, int kMapsPerThread>
__global__ void __launch_bounds__(kThreads) attention_pool_bwd_features_kernel(BackwardParams p) {
  float* smem = dynamic_shared_memory<float>();
  float* s = smem;                                // [K]
  float* w = s + kMaxMaps;                        // [K][kPixelTile]
  float* gv = w + kMaxMaps * kPixelTile;          // [K][kChannelTile], times alpha
  float* tile = gv + kMaxMaps * kChannelTile;     // [kChannelTile][kTileStride]: f, then gf

  const int64_t b = blockIdx.x;
  const int64_t K = p.K, C = p.C, N = p.N;
  const T* a = static_cast<const T*>(p.logits) + b * p.sab;
  const T* f = static_cast<const T*>(p.features) + b * p.sfb;
  const T* gv_b = static_cast<const T*>(p.grad_pooled) + b * K * C;
  T* gf = static_cast<T*>(p.grad_features) + b * p.gfb;
  const float alpha = fm::pool_scale<float>(p.mean_pool, N);
  const float* importance = static_cast<const float*>(p.importance);
  for (int64_t k = threadIdx.x; k < K; k += kThreads) s[k] = importance[b * K + k];

  const int64_t n_ctiles = ceil_div(C, kChannelTile);
  const int64_t per_split = ceil_div(n_ctiles, p.splits);
  const int64_t ct_begin = blockIdx.y * per_split;
  const int64_t ct_end = ct_begin + per_split < n_ctiles ? ct_begin + per_split : n_ctiles;
  float* gw_out = p.gw_splits + (b * p.splits + blockIdx.y) * K * N;
  // gw: thread (group g, pixel n) owns maps g + 4i; gf: thread (channel c, group h) owns pixels
  // h + 4j. Within a warp the map (resp. pixel) is uniform, so those reads broadcast.
  const int n_gw = threadIdx.x % kPixelTile, g = threadIdx.x / kPixelTile;
  const int c_gf = threadIdx.x % kChannelTile, h = threadIdx.x / kChannelTile;

  for (int64_t n0 = 0; n0 < N; n0 += kPixelTile) {
    __syncthreads();  // s is written; the previous tile is consumed
    load_weights(a, p.sak, p.san, K, n0, N, s, w);
    float gw_acc[kMapsPerThread];
#pragma unroll
    for (int i = 0; i < kMapsPerThread; ++i) gw_acc[i] = 0.f;
    for (int64_t ct = ct_begin; ct < ct_end; ++ct) {
      const int64_t c0 = ct * kChannelTile;
      __syncthreads();
      load_tile(f, p.sfc, p.sfn, c0, C, n0, N, tile);
      for (int i = threadIdx.x; i < K * kChannelTile; i += kThreads) {
        const int64_t k = i / kChannelTile, c = c0 + i % kChannelTile;
        gv[i] = c < C ? alpha * to_float(gv_b[k * C + c]) : 0.f;
      }
      __syncthreads();
      for (int c = 0; c < kChannelTile; ++c) {
        const float fv = tile[c * kTileStride + n_gw];
#pragma unroll
        for (int i = 0; i < kMapsPerThread; ++i) {
          const int k = g + kMapGroups * i;
          if (k < K) gw_acc[i] += gv[k * kChannelTile + c] * fv;
        }
      }
      float gf_acc[kPixelsPerThread];
#pragma unroll
      for (int j = 0; j < kPixelsPerThread; ++j) gf_acc[j] = 0.f;
      for (int k = 0; k < K; ++k) {
        const float gvk = gv[k * kChannelTile + c_gf];
#pragma unroll
        for (int j = 0; j < kPixelsPerThread; ++j) {
          gf_acc[j] += gvk * w[k * kPixelTile + h + kMapGroups * j];
        }
      }
      __syncthreads();  // every thread is done reading f from the tile
#pragma unroll
      for (int j = 0; j < kPixelsPerThread; ++j) {
        tile[c_gf * kTileStride + h + kMapGroups * j] = gf_acc[j];
      }
      __syncthreads();
      store_tile(tile, gf, p.gfc, p.gfn, c0, C, n0, N);
    }
    if (n0 + n_gw < N) {
#pragma unroll
      for (int i = 0; i < kMapsPerThread; ++i) {
        const int k = g + kMapGroups * i;
        if (k < K) gw_out[k * N + n0 + n_gw] = gw_acc[i];
      }
    }
  }
}

constexpr int kMapsPerWarp = kMaxMaps / kWarps;  // 8 maps per warp in the epilogue
// The epilogue's shared memory: six [kMaxMaps] float arrays and the winners of a pixel tile.
constexpr size_t kLogitsSharedBytes = 6 * kMaxMaps * sizeof(float) + kThreads * sizeof(int);

template <typename T>
__global__ void __launch_bounds__(kThreads) attention_pool_bwd_logits_kernel(BackwardParams p) {
  float* s = dynamic_shared_memory<float>();  // [kMaxMaps] each, then the winners
  float* lse = s + kMaxMaps;
  float* won = lse + kMaxMaps;
  float* gw_sig = won + kMaxMaps;
  float* gg = gw_sig + kMaxMaps;
  float* p_dot_gp = gg + kMaxMaps;
  int* winner = reinterpret_cast<int*>(p_dot_gp + kMaxMaps);  // [kThreads]
  const int64_t b = blockIdx.x;
  const int64_t K = p.K, N = p.N;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const bool has_gd = p.grad_diversity != nullptr;
  const float gd = has_gd ? static_cast<const float*>(p.grad_diversity)[b] : 0.f;
  const float* importance = static_cast<const float*>(p.importance);
  const float* logsumexp = static_cast<const float*>(p.logsumexp);
  const float* grad_importance = static_cast<const float*>(p.grad_importance);
  const float inv_n = 1.f / static_cast<float>(N);
  const T* a = static_cast<const T*>(p.logits) + b * p.sab;
  T* ga = static_cast<T*>(p.grad_logits) + b * p.gab;
  const float* gw_b = p.gw_splits + b * p.splits * K * N;
  for (int64_t k = threadIdx.x; k < K; k += kThreads) {
    s[k] = importance[b * K + k];
    lse[k] = logsumexp[b * K + k];
  }
  __syncthreads();

  auto gw_at = [&](int64_t k, int64_t n) {  // the splits' shares, summed in a fixed order
    float sum = 0.f;
    for (int i = 0; i < p.splits; ++i) sum += gw_b[(i * K + k) * N + n];
    return sum;
  };
  auto load_winners = [&](int64_t n0) {  // k*(n) of a pixel tile, as the forward picks it
    __syncthreads();
    const int64_t n = n0 + threadIdx.x;
    float best;
    winner[threadIdx.x] = (has_gd && n < N) ? pixel_winner(a, p.sak, p.san, K, n, s, lse, &best)
                                            : -1;
    __syncthreads();
  };

  // Pass 1: per map, sum_n gw sig and the probability mass of the pixels it wins.
  float won_acc[kMapsPerWarp], gws_acc[kMapsPerWarp];
#pragma unroll
  for (int m = 0; m < kMapsPerWarp; ++m) won_acc[m] = gws_acc[m] = 0.f;
  for (int64_t n0 = 0; n0 < N; n0 += kThreads) {
    load_winners(n0);
#pragma unroll
    for (int m = 0; m < kMapsPerWarp; ++m) {
      const int64_t k = warp + kWarps * m;
      if (k >= K) break;
      for (int n = lane; n < kThreads && n0 + n < N; n += 32) {
        const float x = load_logit(a, p.sak, p.san, k, n0 + n);
        gws_acc[m] += gw_at(k, n0 + n) * fm::sigmoid(x);
        if (winner[n] == k) won_acc[m] += fm::pixel_prob(x, lse[k]);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < kMapsPerWarp; ++m) {
    const int64_t k = warp + kWarps * m;
    const float w_sum = warp_sum(won_acc[m]), g_sum = warp_sum(gws_acc[m]);
    if (k < K && lane == 0) {
      won[k] = w_sum;
      gw_sig[k] = g_sum;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // K <= 64 values: serial, in a fixed order
    float weighted = 0.f;
    for (int64_t k = 0; k < K; ++k) {
      gg[k] = grad_importance[b * K + k] + gw_sig[k] - gd * won[k];  // gs_tot for now
      weighted += s[k] * gg[k];
    }
    for (int64_t k = 0; k < K; ++k) {
      gg[k] = fm::importance_softmax_grad(s[k], gg[k], weighted);
      p_dot_gp[k] = -gd * s[k] * won[k];
    }
  }
  __syncthreads();

  // Pass 2: the logit gradient, tile by tile.
  for (int64_t n0 = 0; n0 < N; n0 += kThreads) {
    load_winners(n0);
    for (int64_t k = warp; k < K; k += kWarps) {
      for (int n = lane; n < kThreads && n0 + n < N; n += 32) {
        const float x = load_logit(a, p.sak, p.san, k, n0 + n);
        const float sig = fm::sigmoid(x);
        const float gsig = fm::sigmoid_map_grad(s[k], gw_at(k, n0 + n), gg[k], inv_n);
        const float prob = has_gd ? fm::pixel_prob(x, lse[k]) : 0.f;
        const float gp = winner[n] == k ? -gd * s[k] : 0.f;
        ga[k * p.gak + (n0 + n) * p.gan] =
            from_float<T>(fm::logit_grad(gsig, sig, prob, gp, p_dot_gp[k]));
      }
    }
  }
}

}  // namespace

void launch_backward(const BackwardParams& p, DType dtype, cudaStream_t stream) {
  const size_t smem = sizeof(float) * (kMaxMaps + kMaxMaps * kPixelTile +
                                       kMaxMaps * kChannelTile + kChannelTile * kTileStride);
  const dim3 grid(static_cast<unsigned>(p.B), static_cast<unsigned>(p.splits));
  dispatch_dtype_and_maps(dtype, p.K, [&](auto type, auto maps) {
    using T = typename decltype(type)::type;
    auto features_kernel = attention_pool_bwd_features_kernel<T, decltype(maps)::value>;
    launch(features_kernel, grid, dim3(kThreads), smem, stream, p);
    launch(attention_pool_bwd_logits_kernel<T>, dim3(static_cast<unsigned>(p.B)), dim3(kThreads),
           kLogitsSharedBytes, stream, p);
  });
}

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
