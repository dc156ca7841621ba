// The forward (plan.h): "stats" (one block per sample: importance and log-sum-exp, then one
// pass over the pixels for the diversity and the recalibrated maps w, once per sample, reading
// the logits again from its shared-memory copy where they fit), "pool"
// (v = alpha w f^T, the one pass over the features, on tensor cores through a cp.async ring)
// and, where pixel chunks were split between blocks, "reduce" (their partial sums added in a
// fixed order).
#include "common.cuh"

namespace fusedattn {
namespace attention_pool {
namespace cuda {
namespace {

struct StatsArgs {
  const void* logits;
  int64_t sab, sak, san, K, N;
  float* importance;   // (B, K) out
  float* logsumexp;    // (B, K) out, or nullptr
  float* diversity;    // (B,) out, or nullptr
  void* w;             // (B, w_rows, w_cols) out, the input dtype
  int64_t w_rows, w_cols;
  bool cache_logits;   // keep the sample's logits in shared memory (after stats_shared_floats)
  bool vector_logits;  // load them in 16-byte chunks (sample_statistics)
};

template <typename T>
__global__ void __launch_bounds__(kStatsThreads) stats_kernel(StatsArgs p) {
  float* s = dynamic_shared_memory<float>();  // [K]
  float* lse = s + p.K;                        // [K]
  float* scratch = lse + p.K;                  // [3 kStatsWarps]
  // [K][N]: the logits between the two passes
  T* cache = p.cache_logits ? reinterpret_cast<T*>(s + stats_shared_floats(p.K)) : nullptr;
  const int64_t b = blockIdx.x;
  const T* a = static_cast<const T*>(p.logits) + b * p.sab;
  sample_statistics(a, p.sak, p.san, p.K, p.N, s, lse, scratch, cache, p.vector_logits);
  for (int64_t k = threadIdx.x; k < p.K; k += kStatsThreads) {
    p.importance[b * p.K + k] = s[k];
    if (p.logsumexp != nullptr) p.logsumexp[b * p.K + k] = lse[k];
  }
  // One pass over the pixels: the recalibrated maps w into the scratch (zero past K rows and N
  // pixels) and D = sum_n max_k s[k] p[k, n], the logits read again from the cache if any.
  const T* logits = cache != nullptr ? cache : a;
  const int64_t sak = cache != nullptr ? p.N : p.sak, san = cache != nullptr ? 1 : p.san;
  T* w = static_cast<T*>(p.w) + b * p.w_rows * p.w_cols;
  float partial = 0.f;
  for (int64_t n = threadIdx.x; n < p.w_cols; n += kStatsThreads) {
    if (n < p.N) {
      PixelWinner winner;
      for_each_logit(logits, sak, san, p.K, n, [&](int64_t k, float x) {
        if (p.diversity != nullptr) winner.add(k, fm::weighted_prob(s[k], x, lse[k]));
        w[k * p.w_cols + n] = from_float<T>(s[k] * fm::sigmoid(x));
      });
      partial += winner.best;
    }
    for (int64_t row = n < p.N ? p.K : 0; row < p.w_rows; ++row) {
      w[row * p.w_cols + n] = from_float<T>(0.f);
    }
  }
  if (p.diversity != nullptr) {
    const float D = block_sum<kStatsThreads>(partial, scratch);
    if (threadIdx.x == 0) p.diversity[b] = 1.f - D;
  }
}

struct PoolArgs {
  const void* features;
  int64_t sfb, sfc, sfn, C, N, K;
  const void* w;  // (B, w_rows, w_cols)
  int64_t w_rows, w_cols;
  float alpha;
  void* pooled;     // (B, K, C) out, when unsplit
  float* partial;   // (B, channel tiles, pixel splits, w_rows, kChannelTile) out, when split
  int64_t channel_tiles, pixel_splits, chunks_per_split, pixel_chunks;
};

template <typename T, int kMapTiles, FeatureLoad kLoad>
__global__ void __launch_bounds__(kTileThreads,
                                  (Tiles<sizeof(T), kMapTiles, kLoad>::kPoolMinBlocks))
    pool_kernel(PoolArgs p) {
  using Tiles = ::fusedattn::attention_pool::cuda::Tiles<sizeof(T), kMapTiles, kLoad>;
  T* smem = dynamic_shared_memory<T>();
  const BlockIndex3 at(blockIdx.x, p.channel_tiles, p.pixel_splits);
  const int64_t b = at.outer, ct = at.middle, split = at.inner;
  const int64_t group = blockIdx.y;
  const int64_t c0 = ct * kChannelTile, channels = p.C - c0;
  const int64_t chunk_begin = split * p.chunks_per_split;
  const int64_t chunk_end = chunk_begin + p.chunks_per_split < p.pixel_chunks
                                ? chunk_begin + p.chunks_per_split : p.pixel_chunks;
  const int steps = static_cast<int>(chunk_end - chunk_begin);
  const T* f = static_cast<const T*>(p.features) + b * p.sfb;
  const T* w = static_cast<const T*>(p.w) + (b * p.w_rows + group * Tiles::kMapRows) * p.w_cols;

  // Cursors over the split's pixel chunks (w's scratch holds whole tiles): each load issues the
  // copies of the next chunk into stage `stage`.
  const int64_t n0 = chunk_begin * Tiles::kExtent;
  TileCopy<T, Tiles::kMapRows, Tiles::kExtent, Tiles::kLdw, kTileThreads> copy_maps(w + n0,
                                                                                   p.w_cols);
  FeatureTileCopy<T, Tiles, kLoad> copy_features(p, f + c0 * p.sfc + n0 * p.sfn);
  const int64_t feature_step = Tiles::kExtent * p.sfn;
  const int channels_left = loop_count(channels);
  int pixels_left = loop_count(p.N - n0);
  auto load = [&](int stage) {
    T* ft = smem + stage * Tiles::kPoolStageElements;
    copy_maps.whole(ft + Tiles::kFeatureElements);
    copy_features(ft, p, channels_left, pixels_left);
    copy_maps.advance(Tiles::kExtent);
    copy_features.advance(feature_step);
    pixels_left -= Tiles::kExtent;
  };

  const int warp = threadIdx.x / 32;
  float acc[kMapTiles][4] = {};
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < steps) load(i);
    ptx::cp_async_commit_group();  // (empty groups keep the count uniform)
  }
#pragma unroll 1  // (one stage per iteration: unrolled, the ring only grows the code)
  for (int step = 0; step < steps; ++step) {
    ptx::cp_async_wait_group<kStages - 2>();
    __syncthreads();  // this stage landed for every thread; the previous one is consumed
    if (step + kStages - 1 < steps) load((step + kStages - 1) % kStages);
    ptx::cp_async_commit_group();
    const T* ft = smem + (step % kStages) * Tiles::kPoolStageElements;
    const T* wt = ft + Tiles::kFeatureElements;
    // The warp's 16 channels times every map of the group, over the chunk's pixels in steps
    // of 16: A = f (channels x pixels), B = w^T (pixels x maps).
    const int pixels = kLoad == FeatureLoad::kFlat ? static_cast<int>(p.N) : kPixelTile;
#pragma unroll
    for (int kk = 0; kk < Tiles::kExtent; kk += 16) {
      if (kk >= pixels) break;
#pragma unroll
      for (int j = 0; j < kMapTiles; ++j) {
        if constexpr (kLoad == FeatureLoad::kNhwc) {
          warp_mma_16x8x16<T, ColMajor, ColMajor>(acc[j], ft, Tiles::kLdc, 16 * warp, kk, wt,
                                                  Tiles::kLdw, kk, 8 * j);
        } else if constexpr (kLoad == FeatureLoad::kFlat) {
          warp_mma_16x8x16<T, RowMajorGathered, ColMajor>(acc[j], ft, pixels, 16 * warp, kk,
                                                          wt, Tiles::kLdw, kk, 8 * j, pixels);
        } else {
          warp_mma_16x8x16<T, RowMajor, ColMajor>(acc[j], ft, Tiles::kLdf, 16 * warp, kk, wt,
                                                  Tiles::kLdw, kk, 8 * j);
        }
      }
    }
  }
  ptx::cp_async_wait_all();  // no copy outlives the block (the last groups are empty)

  // The lane's results: channels c0 + 16 warp + group (+ 8), maps 8 j + 2 quad (+ 1).
  const Lane l = Lane::of_this_thread();
#pragma unroll
  for (int j = 0; j < kMapTiles; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int c = 16 * warp + l.group + 8 * (e >> 1);
      const int64_t row = group * Tiles::kMapRows + 8 * j + 2 * l.quad + (e & 1);
      if (p.partial != nullptr) {
        p.partial[(((b * p.channel_tiles + ct) * p.pixel_splits + split) * p.w_rows + row) *
                  kChannelTile + c] = acc[j][e];
      } else if (row < p.K && c < channels) {
        static_cast<T*>(p.pooled)[(b * p.K + row) * p.C + c0 + c] = from_float<T>(p.alpha * acc[j][e]);
      }
    }
  }
}

// v = alpha * (the pixel splits' partial sums, added in split order): blocks over (sample,
// channel tile, kReduceThreads of the group's rows x kChannelTile), one element a thread, its
// splits' partials loaded kReduceBatch at a time before any is added.
template <typename T>
__global__ void __launch_bounds__(kReduceThreads) reduce_kernel(PoolArgs p, int64_t group_rows) {
  const int64_t parts = group_rows * kChannelTile / kReduceThreads;
  const BlockIndex3 at(blockIdx.x, p.channel_tiles, parts);
  const int64_t b = at.outer, ct = at.middle;
  const int64_t c0 = ct * kChannelTile;
  const int64_t i = at.inner * kReduceThreads + threadIdx.x;
  const int64_t row = blockIdx.y * group_rows + i / kChannelTile, c = i % kChannelTile;
  if (row >= p.K || c0 + c >= p.C) return;
  const int64_t split_stride = p.w_rows * kChannelTile;
  const float* partial =
      p.partial + ((b * p.channel_tiles + ct) * p.pixel_splits * p.w_rows + row) * kChannelTile + c;
  float sum = 0.f;
  for (int64_t s0 = 0; s0 < p.pixel_splits; s0 += kReduceBatch) {
    float v[kReduceBatch];
#pragma unroll
    for (int u = 0; u < kReduceBatch; ++u) {
      v[u] = s0 + u < p.pixel_splits ? partial[(s0 + u) * split_stride] : 0.f;
    }
#pragma unroll
    for (int u = 0; u < kReduceBatch; ++u) {
      if (s0 + u < p.pixel_splits) sum += v[u];
    }
  }
  static_cast<T*>(p.pooled)[(b * p.K + row) * p.C + c0 + c] = from_float<T>(p.alpha * sum);
}

template <typename T, int kMapTiles, FeatureLoad kLoad>
void launch_pool(const PoolArgs& args, const ForwardPlan& plan, cudaStream_t stream) {
  launch(pool_kernel<T, kMapTiles, kLoad>, dim3(static_cast<unsigned>(plan.pool.grid_x),
                                                static_cast<unsigned>(plan.pool.grid_y)),
         dim3(plan.pool.threads), plan.pool.shared_bytes, stream, args);
}

}  // namespace

int device_sm_count(int device) { return device_info(device).sm_count; }

void launch_forward(const ForwardParams& p, const ForwardPlan& plan, DType dtype,
                    const ForwardScratch& scratch, cudaStream_t stream) {
  dispatch_dtype(dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    const bool vector_logits = logits_in_chunks(static_cast<int>(sizeof(T)),
                                                reinterpret_cast<uintptr_t>(p.logits), p.sab,
                                                p.sak, p.san, p.N);
    const StatsArgs stats{p.logits, p.sab, p.sak, p.san, p.K, p.N,
                          static_cast<float*>(p.importance), static_cast<float*>(p.logsumexp),
                          static_cast<float*>(p.diversity), scratch.w, plan.w_rows, plan.w_cols,
                          plan.cache_logits, vector_logits};
    launch(stats_kernel<T>, dim3(static_cast<unsigned>(plan.stats.grid_x)), dim3(plan.stats.threads),
           plan.stats.shared_bytes, stream, stats);
    if (plan.pool.grid_x == 0) return;
    const PoolArgs pool{p.features, p.sfb, p.sfc, p.sfn, p.C, p.N, p.K, scratch.w, plan.w_rows,
                        plan.w_cols, fm::pool_scale<float>(p.mean_pool, p.N), p.pooled,
                        plan.pixel_splits > 1 ? scratch.partial : nullptr, plan.channel_tiles,
                        plan.pixel_splits, plan.chunks_per_split, plan.pixel_chunks};
    dispatch_variant(plan.map_tiles, plan.load, [&](auto tiles, auto load) {
      launch_pool<T, decltype(tiles)::value, decltype(load)::value>(pool, plan, stream);
    });
    if (plan.pixel_splits > 1) {
      launch(reduce_kernel<T>, dim3(static_cast<unsigned>(plan.reduce.grid_x),
                                    static_cast<unsigned>(plan.reduce.grid_y)),
             dim3(plan.reduce.threads), 0, stream, pool, static_cast<int64_t>(8 * plan.map_tiles));
    }
  });
}

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
