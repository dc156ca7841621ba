// The forward: ONE launch, grid (B, 1 + splits), 256 threads. Every block recomputes its
// sample's statistics from the logits (K x N, L2-resident) rather than waiting on another
// launch. Block 0 of a sample writes importance, log-sum-exp and the diversity loss; the others
// pool one channel split each: v[k, c] = alpha sum_n s[k] sig[k, n] f[c, n], the features read
// once, in coalesced tiles through shared memory, accumulated in float32.
#include "kernel_common.cuh"

namespace fusedattn {
namespace attention_pool {
namespace cuda {
namespace {

constexpr int kMapGroups = kThreads / kChannelTile;  // 4 groups of map rows

// kMapsPerThread accumulators per thread cover K <= 4 * kMapsPerThread maps.
template <typename T, int kMapsPerThread>
__global__ void __launch_bounds__(kThreads) attention_pool_fwd_kernel(ForwardParams p) {
  float* smem = dynamic_shared_memory<float>();
  float* s = smem;                          // [K]
  float* lse = s + kMaxMaps;                // [K]
  float* scratch = lse + kMaxMaps;          // [kWarps]
  float* w = scratch + kWarps;              // [K][kPixelTile]
  float* f_tile = w + kMaxMaps * kPixelTile;  // [kChannelTile][kTileStride]

  const int64_t b = blockIdx.x;
  const T* a = static_cast<const T*>(p.logits) + b * p.sab;
  sample_statistics(a, p.sak, p.san, p.K, p.N, s, lse);

  if (blockIdx.y == 0) {
    for (int64_t k = threadIdx.x; k < p.K; k += kThreads) {
      static_cast<float*>(p.importance)[b * p.K + k] = s[k];
      if (p.logsumexp != nullptr) static_cast<float*>(p.logsumexp)[b * p.K + k] = lse[k];
    }
    if (p.diversity != nullptr) {  // D = sum_n max_k s[k] p[k, n]
      float partial = 0.f;
      for (int64_t n = threadIdx.x; n < p.N; n += kThreads) {
        float best;
        pixel_winner(a, p.sak, p.san, p.K, n, s, lse, &best);
        partial += best;
      }
      const float D = block_sum<kThreads>(partial, scratch);
      if (threadIdx.x == 0) static_cast<float*>(p.diversity)[b] = 1.f - D;
    }
    return;
  }

  // This block's channel tiles. Thread (group g, channel c) accumulates v[g + 4i, c].
  const int64_t n_ctiles = ceil_div(p.C, kChannelTile);
  const int64_t per_split = ceil_div(n_ctiles, p.splits);
  const int64_t ct_begin = (blockIdx.y - 1) * per_split;
  const int64_t ct_end = ct_begin + per_split < n_ctiles ? ct_begin + per_split : n_ctiles;
  const T* f = static_cast<const T*>(p.features) + b * p.sfb;
  T* v = static_cast<T*>(p.pooled) + b * p.K * p.C;
  const float alpha = fm::pool_scale<float>(p.mean_pool, p.N);
  const int c = threadIdx.x % kChannelTile, g = threadIdx.x / kChannelTile;
  for (int64_t ct = ct_begin; ct < ct_end; ++ct) {
    const int64_t c0 = ct * kChannelTile;
    float acc[kMapsPerThread];
#pragma unroll
    for (int i = 0; i < kMapsPerThread; ++i) acc[i] = 0.f;
    for (int64_t n0 = 0; n0 < p.N; n0 += kPixelTile) {
      __syncthreads();  // the previous tile is consumed
      load_weights(a, p.sak, p.san, p.K, n0, p.N, s, w);
      load_tile(f, p.sfc, p.sfn, c0, p.C, n0, p.N, f_tile);
      __syncthreads();
      const float* fc = f_tile + c * kTileStride;
#pragma unroll 4
      for (int n = 0; n < kPixelTile; ++n) {
        const float fv = fc[n];
#pragma unroll
        for (int i = 0; i < kMapsPerThread; ++i) {
          const int k = g + kMapGroups * i;
          if (k < p.K) acc[i] += w[k * kPixelTile + n] * fv;  // warp-uniform k: broadcast
        }
      }
    }
    if (c0 + c < p.C) {
#pragma unroll
      for (int i = 0; i < kMapsPerThread; ++i) {
        const int k = g + kMapGroups * i;
        if (k < p.K) v[k * p.C + c0 + c] = from_float<T>(alpha * acc[i]);
      }
    }
  }
}

}  // namespace

int num_splits(int64_t B, int64_t C, int device, int64_t max_splits) {
  const int sms = device_info(device).sm_count;
  const int64_t n_ctiles = ceil_div(C > 0 ? C : 1, kChannelTile);
  int64_t splits = ceil_div(2 * static_cast<int64_t>(sms > 0 ? sms : 1), B > 0 ? B : 1);
  splits = splits < n_ctiles ? splits : n_ctiles;
  splits = splits < max_splits ? splits : max_splits;
  splits = splits > 0 ? splits : 1;
  return static_cast<int>(ceil_div(n_ctiles, ceil_div(n_ctiles, splits)));  // no empty split
}

void launch_forward(const ForwardParams& p, DType dtype, cudaStream_t stream) {
  const size_t smem = sizeof(float) *
      (2 * kMaxMaps + kWarps + kMaxMaps * kPixelTile + kChannelTile * kTileStride);
  const dim3 grid(static_cast<unsigned>(p.B), static_cast<unsigned>(1 + p.splits));
  dispatch_dtype_and_maps(dtype, p.K, [&](auto type, auto maps) {
    using T = typename decltype(type)::type;
    launch(attention_pool_fwd_kernel<T, decltype(maps)::value>, grid, dim3(kThreads), smem, stream,
           p);
  });
}

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
