// The backward (plan.h): "pad_gv", only where grad_pooled's rows are not whole 16-byte chunks,
// copies gv with rows padded to whole channel tiles; "features", the one pass over the
// features, computes its pixel chunk's recalibrated maps w from the logits and the saved
// importance, then writes gf = alpha gv^T w and its channel split's share of gw = alpha gv f
// (tensor cores both, a cp.async ring over the split's channel tiles), and, where several map
// groups leave gf to "grad_features", its w tile for that to read; "gather" sums the splits' gw
// in a fixed order and each pixel tile's per-map sums; "logits" applies the spec's epilogue
// (docs/attention_pool.md) and writes grad_logits; where a sample's pixels fit one block,
// "epilogue" does both in one launch.
// Deterministic: no atomics, every sum in a fixed order.
#include "common.cuh"

namespace fusedattn {
namespace attention_pool {
namespace cuda {
namespace {

struct PadGvArgs {
  int64_t K, C;
  const void* grad_pooled;  // (B, K, C) contiguous
  void* gv;                 // (B, gv_rows, gv_cols) out
  int64_t gv_rows, gv_cols;
  int64_t column_windows;   // kPadGvColumns-column windows a row tile is split into
};

// Blocks over (sample, tile of kPadGvRows rows, window of kPadGvColumns columns): gv padded to
// whole channel tiles and rows (zero past K and C), where "features" cannot read grad_pooled
// itself.
template <typename T>
__global__ void __launch_bounds__(kPadGvThreads) pad_gv_kernel(PadGvArgs p) {
  const BlockIndex3 at(blockIdx.x, p.gv_rows / kPadGvRows, p.column_windows);
  const int64_t b = at.outer, row0 = at.middle * kPadGvRows, col0 = at.inner * kPadGvColumns;
  auto window = [&](int64_t cols) {
    return cols - col0 < kPadGvColumns ? cols - col0 : int64_t{kPadGvColumns};
  };
  const T* gv = static_cast<const T*>(p.grad_pooled) + b * p.K * p.C;
  T* padded = static_cast<T*>(p.gv) + (b * p.gv_rows + row0) * p.gv_cols + col0;
  for_each_element<kPadGvUnroll>(
      kPadGvRows, window(p.gv_cols),
      [&](int64_t i, int64_t j) {
        const int64_t row = row0 + i, c = col0 + j;
        return row < p.K && c < p.C ? gv[row * p.C + c] : from_float<T>(0.f);
      },
      [&](int64_t i, int64_t j, T value) { padded[i * p.gv_cols + j] = value; });
}

struct FeaturesArgs {
  const void* features;
  int64_t sfb, sfc, sfn, C, N, K;
  const void* gv;           // (B, gv_rows, gv_cols): grad_pooled, or its padded copy (plan.h)
  int64_t gv_rows, gv_cols;
  const void* logits;       // w = s sigmoid(a) of a chunk's maps, from these two
  int64_t sab, sak, san;
  const float* importance;  // (B, K)
  int64_t w_rows, w_cols;   // gw's rows (map groups, 16 at least) and row length (chunks)
  void* w;                  // (B, w_rows, w_cols) out where several map groups, else nullptr
  float alpha;
  void* grad_features;      // laid out as the feature tiles (plan.h: choose_backward_load)
  int64_t gfb, gfc, gfn;
  bool write_gf;            // one map group: gf here; several: "grad_features" below
  float* gw;                // (B, channel splits, w_rows, w_cols) out
  int64_t pixel_chunks, channel_splits, tiles_per_split, channel_tiles;
};

// The recalibrated maps w = s sigmoid(a) of maps k0, k0 + 1, ... and pixels n0, n0 + 1, ...
// into the shared tile wt[kRows][kLd] (kCols pixels; zero past K maps and N pixels), rounded to
// the input dtype as the forward's "stats" rounds them. A thread loads kBatch logits and their
// importance before using any: one round trip to memory for tiles of up to kBatch elements a
// thread. The caller synchronizes before reading wt.
template <typename T, int kRows, int kCols, int kLd, int kThreads>
__device__ __forceinline__ void recalibrated_maps_tile(T* wt, const T* a, int64_t sak,
                                                       int64_t san, const float* s, int64_t k0,
                                                       int64_t K, int64_t n0, int64_t N) {
  constexpr int kElements = kRows * kCols, kBatch = 8;
  constexpr int kBatches = (kElements + kBatch * kThreads - 1) / (kBatch * kThreads);
#pragma unroll  // (no loop: the kernel's only loop is its ring)
  for (int batch = 0; batch < kBatches; ++batch) {
    const int i0 = threadIdx.x + batch * kBatch * kThreads;
    float x[kBatch], importance[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = i0 + u * kThreads, r = i / kCols, c = i % kCols;
      const bool in = i < kElements && k0 + r < K && n0 + c < N;
      x[u] = in ? load_logit(a, sak, san, k0 + r, n0 + c) : 0.f;
      importance[u] = in ? s[k0 + r] : 0.f;
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = i0 + u * kThreads;
      if (i < kElements) {
        wt[i / kCols * kLd + i % kCols] = from_float<T>(fm::recalibrated_map(importance[u], x[u]));
      }
    }
  }
}

// gf += alpha gv^T w over one map group (the rows of gvt and wt), for the warp's 16 channels
// and every pixel of the chunk: A = gv^T (channels x maps), B = w (maps x pixels).
template <typename Tiles, typename T>
__device__ __forceinline__ void grad_features_products(float (&acc)[Tiles::kExtent / 8][4],
                                                       const T* gvt, const T* wt, int warp) {
#pragma unroll
  for (int kk = 0; kk < Tiles::kMapRows16; kk += 16) {
#pragma unroll
    for (int t = 0; t < Tiles::kExtent / 8; ++t) {
      warp_mma_16x8x16<T, ColMajor, RowMajor>(acc[t], gvt, Tiles::kLdc, 16 * warp, kk, wt,
                                              Tiles::kLdw, kk, 8 * t);
    }
  }
}

// Stages the warp's gf accumulators (times alpha) in shared memory as the feature tiles lie
// ([channel][pixel], [pixel][channel] or a span), then (after a barrier) the block stores the
// tile: 16-byte stores but for the variant that reads element by element. Ends with a
// barrier: the staging tile is free.
template <typename Tiles, FeatureLoad kLoad, typename T>
__device__ void store_grad_features(const float (&acc)[Tiles::kExtent / 8][4], T* staging,
                                    const FeaturesArgs& p, int64_t b, int64_t c0, int64_t n0,
                                    int warp) {
  const Lane l = Lane::of_this_thread();
  const int64_t channels = p.C - c0, pixels = p.N - n0;
  const int span_ld = static_cast<int>(p.N);
#pragma unroll
  for (int t = 0; t < Tiles::kExtent / 8; ++t) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int c = 16 * warp + l.group + 8 * (e >> 1), n = 8 * t + 2 * l.quad + (e & 1);
      const T value = from_float<T>(p.alpha * acc[t][e]);
      if constexpr (kLoad == FeatureLoad::kNhwc) {
        staging[n * Tiles::kLdc + c] = value;
      } else if constexpr (kLoad == FeatureLoad::kFlat) {
        if (n < span_ld) staging[c * span_ld + n] = value;
      } else {
        staging[c * Tiles::kLdgf + n] = value;
      }
    }
  }
  __syncthreads();
  T* gf = static_cast<T*>(p.grad_features) + b * p.gfb;
  if constexpr (kLoad == FeatureLoad::kNchw) {
    store_tile<T, kChannelTile, Tiles::kExtent, Tiles::kLdgf, kTileThreads, true>(
        gf + c0 * p.gfc + n0, staging, p.gfc, 1, channels, pixels);
  } else if constexpr (kLoad == FeatureLoad::kNhwc) {
    store_tile<T, Tiles::kExtent, kChannelTile, Tiles::kLdc, kTileThreads, true>(
        gf + n0 * p.gfn + c0, staging, p.gfn, 1, pixels, channels);
  } else if constexpr (kLoad == FeatureLoad::kFlat) {
    store_span<T, kTileThreads, kChannelTile * kFlatPixels>(
        gf + c0 * p.N, staging, (channels < kChannelTile ? channels : kChannelTile) * p.N);
  } else {
    store_tile<T, kChannelTile, Tiles::kExtent, Tiles::kLdgf, kTileThreads, false>(
        gf + c0 * p.gfc + n0 * p.gfn, staging, p.gfc, p.gfn, channels, pixels);
  }
  __syncthreads();
}

template <typename T, int kMapTiles, FeatureLoad kLoad>
__global__ void __launch_bounds__(kTileThreads,
                                  (Tiles<sizeof(T), kMapTiles, kLoad>::kFeaturesMinBlocks))
    features_kernel(FeaturesArgs p) {
  using Tiles = ::fusedattn::attention_pool::cuda::Tiles<sizeof(T), kMapTiles, kLoad>;
  constexpr int kStages = Tiles::kStages;
  T* wt = dynamic_shared_memory<T>();
  T* ring = wt + Tiles::kWElements;
  T* staging = ring + kStages * Tiles::kFeaturesStageElements;
  float* gw_parts = reinterpret_cast<float*>(staging + Tiles::kGfElements);

  const BlockIndex3 at(blockIdx.x, p.pixel_chunks, p.channel_splits);
  const int64_t b = at.outer, chunk = at.middle, split = at.inner;
  const int64_t group = blockIdx.y, k0 = group * Tiles::kMapRows;
  const int64_t tile_begin = split * p.tiles_per_split;
  const int64_t tile_end = tile_begin + p.tiles_per_split < p.channel_tiles
                               ? tile_begin + p.tiles_per_split : p.channel_tiles;
  const int steps = static_cast<int>(tile_end - tile_begin);
  const int64_t n0 = chunk * Tiles::kExtent;
  const T* f = static_cast<const T*>(p.features) + b * p.sfb;
  const T* gv = static_cast<const T*>(p.gv) + (b * p.gv_rows + k0) * p.gv_cols;

  // Cursors over the split's channel tiles: each load issues the copies of the next tile
  // (features and gv, zero past its rows and channels) into stage `stage`.
  const int64_t c0 = tile_begin * kChannelTile;
  TileCopy<T, Tiles::kMapRows16, kChannelTile, Tiles::kLdc, kTileThreads> copy_gv(gv + c0,
                                                                                 p.gv_cols);
  FeatureTileCopy<T, Tiles, kLoad> copy_features(p, f + c0 * p.sfc + n0 * p.sfn);
  const int64_t feature_step = kChannelTile * p.sfc;
  const int pixels_left = loop_count(p.N - n0), maps_left = loop_count(p.gv_rows - k0);
  int channels_left = loop_count(p.C - c0);
  auto load = [&](int stage) {
    T* ft = ring + stage * Tiles::kFeaturesStageElements;
    copy_gv(ft + Tiles::kFeatureElements, maps_left, channels_left);
    copy_features(ft, p, channels_left, pixels_left);
    copy_gv.advance(kChannelTile);
    copy_features.advance(feature_step);
    channels_left -= kChannelTile;
  };

  const int warp = threadIdx.x / 32;
  const int pixel_block = warp % Tiles::kPixelBlocks, part = warp / Tiles::kPixelBlocks;
  constexpr int kPartChannels = kChannelTile / Tiles::kChannelParts;
  float gw_acc[kMapTiles][4] = {};
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < steps) load(i);
    ptx::cp_async_commit_group();
  }
  // The chunk's maps of the group, computed while the ring's first copies are in flight.
  recalibrated_maps_tile<T, Tiles::kMapRows16, Tiles::kExtent, Tiles::kLdw, kTileThreads>(
      wt, static_cast<const T*>(p.logits) + b * p.sab, p.sak, p.san, p.importance + b * p.K, k0,
      p.K, n0, p.N);
#pragma unroll 1  // (one stage per iteration: unrolled, the ring only grows the code)
  for (int step = 0; step < steps; ++step) {
    ptx::cp_async_wait_group<kStages - 2>();
    __syncthreads();  // this stage landed (and the map tile is written); the previous is consumed
    if (step + kStages - 1 < steps) load((step + kStages - 1) % kStages);
    ptx::cp_async_commit_group();
    const T* ft = ring + (step % kStages) * Tiles::kFeaturesStageElements;
    const T* gvt = ft + Tiles::kFeatureElements;
    // gw^T (pixels x maps) += f^T (pixels x channels) gv^T (channels x maps): the warp's 16
    // pixels, 16 channels of its part of the tile.
    auto products = [&](int kk) {
#pragma unroll
      for (int j = 0; j < kMapTiles; ++j) {
        if constexpr (kLoad == FeatureLoad::kNhwc) {
          warp_mma_16x8x16<T, RowMajor, ColMajor>(gw_acc[j], ft, Tiles::kLdc, 16 * pixel_block,
                                                  kk, gvt, Tiles::kLdc, kk, 8 * j);
        } else if constexpr (kLoad == FeatureLoad::kFlat) {
          warp_mma_16x8x16<T, ColMajorGathered, ColMajor>(
              gw_acc[j], ft, static_cast<int>(p.N), 16 * pixel_block, kk, gvt, Tiles::kLdc, kk,
              8 * j);
        } else {
          warp_mma_16x8x16<T, ColMajor, ColMajor>(gw_acc[j], ft, Tiles::kLdf, 16 * pixel_block,
                                                  kk, gvt, Tiles::kLdc, kk, 8 * j);
        }
      }
    };
    if constexpr (sizeof(T) == 4 && kLoad == FeatureLoad::kFlat) {
      // float's products are FMAs on scalar shared loads: the flat variant's 64 channels a
      // warp, unrolled as well as the maps, were seen to need more than 255 registers.
#pragma unroll 1
      for (int kk = part * kPartChannels; kk < (part + 1) * kPartChannels; kk += 16) products(kk);
    } else {
#pragma unroll
      for (int kk = part * kPartChannels; kk < (part + 1) * kPartChannels; kk += 16) products(kk);
    }
    if (p.write_gf) {
      float gf_acc[Tiles::kExtent / 8][4] = {};
      grad_features_products<Tiles>(gf_acc, gvt, wt, warp);
      store_grad_features<Tiles, kLoad>(gf_acc, staging, p, b, (tile_begin + step) * kChannelTile,
                                        n0, warp);
    }
  }
  ptx::cp_async_wait_all();
  if (p.w != nullptr && split == 0) {  // (several map groups: for "grad_features")
    __syncthreads();  // wt is written (no step may have run)
    store_tile<T, Tiles::kMapRows16, Tiles::kExtent, Tiles::kLdw, kTileThreads, true>(
        static_cast<T*>(p.w) + (b * p.w_rows + k0) * p.w_cols + n0, wt, p.w_cols, 1,
        Tiles::kMapRows16, Tiles::kExtent);
  }

  // The channel parts' gw added in part order, then the split's share stored (times alpha).
  const Lane l = Lane::of_this_thread();
#pragma unroll
  for (int j = 0; j < kMapTiles; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int n = l.group + 8 * (e >> 1), row = 8 * j + 2 * l.quad + (e & 1);
      gw_parts[((part * Tiles::kPixelBlocks + pixel_block) * 16 + n) * Tiles::kMapRows + row] =
          gw_acc[j][e];
    }
  }
  __syncthreads();
  // Four pixels a thread: 16-byte stores (rows of w_cols floats, a multiple of the extent).
  float* gw = p.gw + ((b * p.channel_splits + split) * p.w_rows + k0) * p.w_cols + n0;
  constexpr int kQuads = Tiles::kExtent / 4;
  for (int i = threadIdx.x; i < Tiles::kMapRows * kQuads; i += kTileThreads) {
    const int row = i / kQuads, n = i % kQuads * 4;
    float sums[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float sum = 0.f;
#pragma unroll
      for (int q = 0; q < Tiles::kChannelParts; ++q) {
        sum += gw_parts[((q * Tiles::kPixelBlocks + (n + e) / 16) * 16 + (n + e) % 16) *
                            Tiles::kMapRows + row];
      }
      sums[e] = p.alpha * sum;
    }
    uint4 chunk;
    memcpy(&chunk, sums, sizeof chunk);
    store_global_v4(reinterpret_cast<uint4*>(gw + row * p.w_cols + n), chunk);
  }
}

// gf = alpha sum over map groups of gv_g^T w_g, for calls with several map groups (their
// "features" blocks wrote gw only): blocks over (sample, pixel chunk, channel tile).
template <typename T, int kMapTiles, FeatureLoad kLoad>
__global__ void __launch_bounds__(kTileThreads) grad_features_kernel(FeaturesArgs p) {
  using Tiles = ::fusedattn::attention_pool::cuda::Tiles<sizeof(T), kMapTiles, kLoad>;
  T* wt = dynamic_shared_memory<T>();
  T* gvt = wt + Tiles::kWElements;
  T* staging = gvt + Tiles::kGvElements;
  const BlockIndex3 at(blockIdx.x, p.pixel_chunks, p.channel_tiles);
  const int64_t b = at.outer, chunk = at.middle, c0 = at.inner * kChannelTile;
  const int64_t n0 = chunk * Tiles::kExtent;
  const int warp = threadIdx.x / 32;
  float acc[Tiles::kExtent / 8][4] = {};
  for (int64_t k0 = 0; k0 < p.K; k0 += Tiles::kMapRows) {
    __syncthreads();  // the previous group's tiles are consumed
    copy_tile_async<T, Tiles::kMapRows16, Tiles::kExtent, Tiles::kLdw, kTileThreads>(
        wt, static_cast<const T*>(p.w) + (b * p.w_rows + k0) * p.w_cols + n0, p.w_cols,
        Tiles::kMapRows16, Tiles::kExtent);
    copy_tile_async<T, Tiles::kMapRows16, kChannelTile, Tiles::kLdc, kTileThreads>(
        gvt, static_cast<const T*>(p.gv) + (b * p.gv_rows + k0) * p.gv_cols + c0, p.gv_cols,
        p.gv_rows - k0, p.C - c0);
    ptx::cp_async_wait_all();
    __syncthreads();
    grad_features_products<Tiles>(acc, gvt, wt, warp);
  }
  store_grad_features<Tiles, kLoad>(acc, staging, p, b, c0, n0, warp);
}

struct EpilogueArgs {
  const void* logits;
  int64_t sab, sak, san, K, N;
  const float* importance;       // (B, K)
  const float* logsumexp;        // (B, K)
  const float* grad_importance;  // (B, K)
  const float* grad_diversity;   // (B,) or nullptr
  // (B, channel splits, w_rows, w_cols): split 0's slot gets the splits' sum where a later
  // pass reads it back (several splits, or maps not held)
  float* gw;
  int64_t channel_splits, w_rows, w_cols;
  float* sums;                   // (B, pixel blocks, 2, K); unused by "epilogue"
  int64_t pixel_blocks;
  void* grad_logits;
  int64_t gab, gak, gan;
};

// A thread's pixels' logits and gw summed over the channel splits (in split order), for maps
// 0, ..., K - 1, loaded once where K <= kLogitBatch (kHeld: the plan's held_maps, a
// compile-time choice, so that neither way's registers burden the other's), and the maps' s
// and log-sum-exp (then copied into shared memory): the epilogue's passes (the winner, the
// per-map sums, grad_logits) read them here instead of each loading them again. Every thread
// of a launch takes the same way (zeros past the pixels), so that warps stay on one path
// through their shuffles; only constant indices reach the arrays.
// (kBatch: the maps the thread loads at a time where it holds none)
template <int kPixels, bool kHeld, int kBatch>
struct HeldMaps {
  const float* s = nullptr;    // [K]: shared memory where held, else the sample's row in memory
  const float* lse = nullptr;  // [K]: the same
  float x[kLogitBatch][kPixels], gw[kLogitBatch][kPixels];
};

// Where K <= kLogitBatch (kHeld): the thread's pixels' maps, gw summed over the first `splits`
// channel splits (1 where "gather" left their total in split 0's slot; that total stored there
// where `store_totals`), loaded before using any (four splits in flight together for one
// pixel a thread, one for two), and s and lse copied into `statistics` (2 kLogitBatch shared
// floats). Ends with a barrier where it holds them (the same for every thread).
template <typename T, bool kHeld, int kBatch, int kPixels>
__device__ HeldMaps<kPixels, kHeld, kBatch> hold_maps(const EpilogueArgs& p, int64_t b,
                                                      const ThreadPixels<kPixels>& px,
                                                      int64_t splits, bool store_totals,
                                                      float* statistics) {
  HeldMaps<kPixels, kHeld, kBatch> h;
  h.s = p.importance + b * p.K;
  h.lse = p.logsumexp + b * p.K;
  if constexpr (!kHeld) return h;
  if (threadIdx.x < p.K) {
    statistics[threadIdx.x] = h.s[threadIdx.x];
    statistics[kLogitBatch + threadIdx.x] = h.lse[threadIdx.x];
  }
  const T* a = static_cast<const T*>(p.logits) + b * p.sab;
  float* gw = p.gw + b * p.channel_splits * p.w_rows * p.w_cols;
#pragma unroll
  for (int u = 0; u < kLogitBatch; ++u) {
#pragma unroll
    for (int j = 0; j < kPixels; ++j) {
      h.x[u][j] = px.in(j) && u < p.K ? load_logit(a, p.sak, p.san, u, px.at(j)) : 0.f;
      h.gw[u][j] = 0.f;
    }
  }
  const auto add_split = [&](const float* g) {
#pragma unroll
    for (int u = 0; u < kLogitBatch; ++u) {
#pragma unroll
      for (int j = 0; j < kPixels; ++j) {
        if (px.in(j) && u < p.K) h.gw[u][j] += g[u * p.w_cols + px.at(j)];
      }
    }
  };
  // (A pixel a thread: four splits a round, indexed; two pixels: one, by a pointer stepped over
  // the splits, the way "gather" was seen to fit in its 64 registers without a spill.)
  const int64_t split_stride = p.w_rows * p.w_cols;
  if constexpr (kPixels == 1) {
#pragma unroll 4
    for (int64_t split = 0; split < splits; ++split) add_split(gw + split * split_stride);
  } else {
    const float* g = gw;
#pragma unroll 1
    for (int64_t split = 0; split < splits; ++split, g += split_stride) add_split(g);
  }
  if (store_totals) {
#pragma unroll
    for (int u = 0; u < kLogitBatch; ++u) {
#pragma unroll
      for (int j = 0; j < kPixels; ++j) {
        if (px.in(j) && u < p.K) gw[u * p.w_cols + px.at(j)] = h.gw[u][j];
      }
    }
  }
  __syncthreads();
  h.s = statistics;
  h.lse = statistics + kLogitBatch;
  return h;
}

// Calls fn(k, x, gw, s[k], lse[k]) for maps k_begin, ..., k_end - 1 in order, x[j] and gw[j] of
// the thread's pixels, from `held` where it holds them (k_begin is then 0), else loading
// kBatch maps at a time (for_each_map; gw from `gw_of(k, n)`).
template <typename T, int kPixels, bool kHeld, int kBatch, typename GwOf, typename Fn>
__device__ __forceinline__ void for_each_pixel_map(const HeldMaps<kPixels, kHeld, kBatch>& held,
                                                   const EpilogueArgs& p, int64_t b,
                                                   const ThreadPixels<kPixels>& px,
                                                   int64_t k_begin, int64_t k_end, GwOf&& gw_of,
                                                   Fn&& fn) {
  // (held maps are walked from map 0: every caller's first group of maps is all of them)
  static_assert(kLogitBatch <= kGatherMaps, "held maps are one of gather's groups");
  if constexpr (kHeld) {
#pragma unroll
    for (int u = 0; u < kLogitBatch; ++u) {
      if (u < k_end) fn(int64_t{u}, held.x[u], held.gw[u], held.s[u], held.lse[u]);
    }
    return;
  }
  for_each_map<kBatch>(static_cast<const T*>(p.logits) + b * p.sab, p.sak, p.san, px, k_begin,
                       k_end, gw_of,
                       [&](int64_t k, const float (&x)[kPixels], const float (&gw)[kPixels]) {
    fn(k, x, gw, held.s[k], held.lse[k]);
  });
}

// Sums each of the thread's pixels' gw over the channel splits into split 0's slot, in split
// order: kBatch maps at a time, a split's loads of the batch in flight together (not each map's
// splits one after another). The same thread reads the totals back.
template <int kBatch, int kPixels>
__device__ __forceinline__ void add_splits_in_place(float* gw, int64_t split_stride,
                                                    int64_t w_cols,
                                                    const ThreadPixels<kPixels>& px, int64_t K,
                                                    int64_t splits) {
  for (int64_t k0 = 0; k0 < K; k0 += kBatch) {
    float total[kBatch][kPixels];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
#pragma unroll
      for (int j = 0; j < kPixels; ++j) {
        total[u][j] = px.in(j) && k0 + u < K ? gw[(k0 + u) * w_cols + px.at(j)] : 0.f;
      }
    }
    const float* g = gw;
#pragma unroll 1
    for (int64_t split = 1; split < splits; ++split) {
      g += split_stride;
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
#pragma unroll
        for (int j = 0; j < kPixels; ++j) {
          if (px.in(j) && k0 + u < K) total[u][j] += g[(k0 + u) * w_cols + px.at(j)];
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
#pragma unroll
      for (int j = 0; j < kPixels; ++j) {
        if (px.in(j) && k0 + u < K) gw[(k0 + u) * w_cols + px.at(j)] = total[u][j];
      }
    }
  }
}

// Per pixel: gw summed over the channel splits (in split order; unless held, into split 0's
// slot first where `store_totals`, there for a later pass as well; hold_maps stores held
// ones); per map, over the block's pixel tile (whole warps): sum_n gw sig, and the
// probability mass of the pixels the map wins, into sums[0][K] and sums[1][K]. Maps go
// kGatherMaps at a time: each warp's sums (a thread's pixels, then shuffles) meet in
// warp_sums ([2][kGatherMaps][warps] shared floats), added in warp order once per group of
// maps, not a block-wide sum per map. Ends with a barrier.
template <typename T, int kPixels, bool kHeld, int kBatch>
__device__ __forceinline__ void gather_pixel_tile(const EpilogueArgs& p, int64_t b,
                                                  const ThreadPixels<kPixels>& px,
                                                  const HeldMaps<kPixels, kHeld, kBatch>& held,
                                                  const PixelWinner (&winners)[kPixels],
                                                  bool store_totals, float* warp_sums,
                                                  float* sums) {
  const int warps = static_cast<int>(blockDim.x / 32);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* gw = p.gw + b * p.channel_splits * p.w_rows * p.w_cols;
  // (not held: with one split its gw is the total; with several, store_totals)
  if (!kHeld && store_totals) {
    add_splits_in_place<kBatch>(gw, p.w_rows * p.w_cols, p.w_cols, px, p.K, p.channel_splits);
  }
  const auto split_total = [&](int64_t k, int64_t n) { return gw[k * p.w_cols + n]; };
  for (int64_t k0 = 0; k0 < p.K; k0 += kGatherMaps) {
    const int maps = static_cast<int>(p.K - k0 < kGatherMaps ? p.K - k0 : kGatherMaps);
    for_each_pixel_map<T>(held, p, b, px, k0, k0 + maps, split_total,
                          [&](int64_t k, const float (&x)[kPixels], const float (&total)[kPixels],
                              float, float lse_k) {
      const int i = static_cast<int>(k - k0);
      float gw_sig = 0.f, won = 0.f;
#pragma unroll
      for (int j = 0; j < kPixels; ++j) {
        if (px.in(j)) gw_sig += total[j] * fm::sigmoid(x[j]);
        if (winners[j].winner == k) won += fm::pixel_prob(x[j], lse_k);
      }
      gw_sig = warp_sum(gw_sig);
      won = warp_sum(won);
      if (lane == 0) {
        warp_sums[i * warps + warp] = gw_sig;
        warp_sums[(kGatherMaps + i) * warps + warp] = won;
      }
    });
    __syncthreads();
    for (int t = static_cast<int>(threadIdx.x); t < 2 * maps; t += static_cast<int>(blockDim.x)) {
      const int which = t / maps, j = t % maps;
      float total = 0.f;
      for (int w = 0; w < warps; ++w) total += warp_sums[(which * kGatherMaps + j) * warps + w];
      sums[which * p.K + k0 + j] = total;
    }
    __syncthreads();  // warp_sums is free for the next group; the sums are written
  }
}

// The importance-softmax part of the epilogue, per map, into shared gg[K] and p_dot_gp[K]:
// gs_tot from the `tiles` pixel tiles' sums (gather_pixel_tile's [2][K] each, in tile order),
// then its gradient through the softmax. Ends with a barrier.
__device__ void importance_grads(const EpilogueArgs& p, int64_t b, const float* sums,
                                 int64_t tiles, float* gg, float* p_dot_gp) {
  const float* s = p.importance + b * p.K;
  const float gd = p.grad_diversity != nullptr ? p.grad_diversity[b] : 0.f;
  for (int64_t k = threadIdx.x; k < p.K; k += blockDim.x) {
    float gw_sig = 0.f, won = 0.f;
    for (int64_t i = 0; i < tiles; ++i) {
      gw_sig += sums[i * 2 * p.K + k];
      won += sums[i * 2 * p.K + p.K + k];
    }
    gg[k] = p.grad_importance[b * p.K + k] + gw_sig - gd * won;  // gs_tot for now
    p_dot_gp[k] = -gd * s[k] * won;
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // K values: serial, in a fixed order
    float weighted = 0.f;
    for (int64_t k = 0; k < p.K; ++k) weighted += s[k] * gg[k];
    for (int64_t k = 0; k < p.K; ++k) gg[k] = fm::importance_softmax_grad(s[k], gg[k], weighted);
  }
  __syncthreads();
}

// grad_logits at the thread's pixels (the spec's epilogue): the sigmoid and pixel-softmax
// terms, with gw summed over the splits (held, or split 0's slot) and importance_grads' gg and
// p_dot_gp.
template <typename T, int kPixels, bool kHeld, int kBatch>
__device__ __forceinline__ void write_grad_logits(const EpilogueArgs& p, int64_t b,
                                                  const ThreadPixels<kPixels>& px,
                                                  const HeldMaps<kPixels, kHeld, kBatch>& held,
                                                  const PixelWinner (&winners)[kPixels],
                                                  const float* gg, const float* p_dot_gp) {
  const float gd = p.grad_diversity != nullptr ? p.grad_diversity[b] : 0.f;
  const float* gw = p.gw + b * p.channel_splits * p.w_rows * p.w_cols;
  const float inv_n = 1.f / static_cast<float>(p.N);
  T* ga = static_cast<T*>(p.grad_logits) + b * p.gab;
  for_each_pixel_map<T>(held, p, b, px, 0, p.K,
                        [&](int64_t k, int64_t n) { return gw[k * p.w_cols + n]; },
                        [&](int64_t k, const float (&x)[kPixels], const float (&g)[kPixels],
                            float s_k, float lse_k) {
#pragma unroll
    for (int j = 0; j < kPixels; ++j) {
      if (!px.in(j)) continue;
      const float sig = fm::sigmoid(x[j]);
      const float gsig = fm::sigmoid_map_grad(s_k, g[j], gg[k], inv_n);
      const float prob = p.grad_diversity != nullptr ? fm::pixel_prob(x[j], lse_k) : 0.f;
      const float gp = winners[j].winner == k ? -gd * s_k : 0.f;
      ga[k * p.gak + px.at(j) * p.gan] =
          from_float<T>(fm::logit_grad(gsig, sig, prob, gp, p_dot_gp[k]));
    }
  });
}

// Each of the thread's pixels' winning map (none past the last pixel, or without the
// diversity's gradient).
template <typename T, int kPixels, bool kHeld, int kBatch>
__device__ __forceinline__ void find_winners(const EpilogueArgs& p, int64_t b,
                                             const ThreadPixels<kPixels>& px,
                                             const HeldMaps<kPixels, kHeld, kBatch>& held,
                                             PixelWinner (&winners)[kPixels]) {
  if (p.grad_diversity == nullptr) return;
  for_each_pixel_map<T>(held, p, b, px, 0, p.K, [](int64_t, int64_t) { return 0.f; },
                        [&](int64_t k, const float (&x)[kPixels], const float (&)[kPixels],
                            float s_k, float lse_k) {
#pragma unroll
    for (int j = 0; j < kPixels; ++j) {
      if (px.in(j)) winners[j].add(k, fm::weighted_prob(s_k, x[j], lse_k));
    }
  });
}

// "gather"'s and "logits"' pixel tiles: kPixels pixels a thread, kPixels x kEpilogueThreads a
// tile (blocks over (sample, pixel tile)); a thread's pixels where they hold their maps, else one.
template <bool kHeld>
constexpr int kTilePixels = kHeld ? kEpiloguePixels : 1;

template <bool kHeld>
__device__ __forceinline__ ThreadPixels<kTilePixels<kHeld>> tile_pixels(const EpilogueArgs& p,
                                                                       int64_t block) {
  return {block * kTilePixels<kHeld> * kEpilogueThreads + threadIdx.x, kEpilogueThreads, p.N};
}

// Blocks over (sample, pixel tile): gather_pixel_tile into the tile's slot of the sums scratch
// (and the split totals into split 0's slot for "logits", where the channels were split).
template <typename T, bool kHeld>
__global__ void __launch_bounds__(kEpilogueThreads, kEpilogueMinBlocks) gather_kernel(
    EpilogueArgs p) {
  float* warp_sums = dynamic_shared_memory<float>();  // [2][kGatherMaps][warps]
  float* statistics = warp_sums + 2 * kGatherMaps * (kEpilogueThreads / 32);  // [2][kLogitBatch]
  const BlockIndex3 at(blockIdx.x, p.pixel_blocks, 1);
  const int64_t b = at.outer, block = at.middle;
  const auto px = tile_pixels<kHeld>(p, block);
  const bool store_totals = p.channel_splits > 1;  // (for "logits")
  const auto held =
      hold_maps<T, kHeld, kLogitBatch>(p, b, px, p.channel_splits, store_totals, statistics);
  PixelWinner winners[kTilePixels<kHeld>];
  find_winners<T>(p, b, px, held, winners);
  // (the tile's slot, b * pixel_blocks + block, is blockIdx.x: b is not kept for it)
  gather_pixel_tile<T>(p, b, px, held, winners, store_totals, warp_sums,
                       p.sums + static_cast<int64_t>(blockIdx.x) * 2 * p.K);
}

// Blocks over (sample, pixel tile), after "gather": grad_logits from every tile's sums.
template <typename T, bool kHeld>
__global__ void __launch_bounds__(kEpilogueThreads, kEpilogueMinBlocks) logits_kernel(
    EpilogueArgs p) {
  float* gg = dynamic_shared_memory<float>();  // [K]
  float* p_dot_gp = gg + p.K;                   // [K]
  float* statistics = p_dot_gp + p.K;           // [2][kLogitBatch]
  const BlockIndex3 at(blockIdx.x, p.pixel_blocks, 1);
  const int64_t b = at.outer, block = at.middle;
  const auto px = tile_pixels<kHeld>(p, block);
  // (held: the maps' loads in flight while the tiles' sums are read; gw's totals are in split
  // 0's slot)
  const auto held = hold_maps<T, kHeld, kLogitsMapBatch>(p, b, px, 1, false, statistics);
  importance_grads(p, b, p.sums + b * p.pixel_blocks * 2 * p.K, p.pixel_blocks, gg, p_dot_gp);
  PixelWinner winners[kTilePixels<kHeld>];
  find_winners<T>(p, b, px, held, winners);
  write_grad_logits<T>(p, b, px, held, winners, gg, p_dot_gp);
}

// "gather" and "logits" in one launch where a sample's pixels fit one block (a thread a pixel,
// whole warps, kEpilogueMaxThreads at most): a block per sample, its per-map sums its own
// (shared memory), each pixel's winner found once.
template <typename T, bool kHeld>
__global__ void __launch_bounds__(kEpilogueMaxThreads) epilogue_kernel(
    EpilogueArgs p) {
  // (statistics first: a constant offset; the others' depend on the block and K)
  float* statistics = dynamic_shared_memory<float>();  // [2][kLogitBatch] where held
  float* warp_sums = statistics + (kHeld ? 2 * kLogitBatch : 0);  // [2][kGatherMaps][warps]
  float* sums = warp_sums + 2 * kGatherMaps * (blockDim.x / 32);  // [2][K]
  float* gg = sums + 2 * p.K;                                           // [K]
  float* p_dot_gp = gg + p.K;                                           // [K]
  const int64_t b = blockIdx.x;
  const ThreadPixels<1> px{threadIdx.x, blockDim.x, p.N};
  const auto held = hold_maps<T, kHeld, kLogitBatch>(p, b, px, p.channel_splits, false, statistics);
  PixelWinner winners[1];
  find_winners<T>(p, b, px, held, winners);
  // (held: the totals stay in registers; else write_grad_logits reads them back)
  gather_pixel_tile<T>(p, b, px, held, winners, p.channel_splits > 1 && !kHeld, warp_sums,
                       sums);
  importance_grads(p, b, sums, 1, gg, p_dot_gp);
  write_grad_logits<T>(p, b, px, held, winners, gg, p_dot_gp);
}

}  // namespace

void launch_backward(const BackwardParams& p, const BackwardPlan& plan, DType dtype,
                     const BackwardScratch& scratch, cudaStream_t stream) {
  dispatch_dtype(dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    const void* gv = plan.gv_direct ? p.grad_pooled : scratch.gv;
    if (!plan.gv_direct) {
      const PadGvArgs pad{p.K, p.C, p.grad_pooled, scratch.gv, plan.gv_rows, plan.gv_cols,
                          plan.pad_gv_column_windows};
      launch(pad_gv_kernel<T>, dim3(static_cast<unsigned>(plan.pad_gv.grid_x)),
             dim3(plan.pad_gv.threads), 0, stream, pad);
    }
    if (plan.features.grid_x > 0) {
      const FeaturesArgs args{
          p.features, p.sfb, p.sfc, p.sfn, p.C, p.N, p.K, gv, plan.gv_rows, plan.gv_cols,
          p.logits, p.sab, p.sak, p.san, static_cast<const float*>(p.importance), plan.w_rows,
          plan.w_cols, plan.map_groups > 1 ? scratch.w : nullptr,
          fm::pool_scale<float>(p.mean_pool, p.N),
          p.grad_features, p.gfb, p.gfc, p.gfn, plan.map_groups == 1, scratch.gw,
          plan.pixel_chunks, plan.channel_splits, plan.tiles_per_split, plan.channel_tiles};
      dispatch_variant(plan.map_tiles, plan.load, [&](auto tiles, auto load) {
        constexpr int kTiles = decltype(tiles)::value;
        constexpr FeatureLoad kLoad = decltype(load)::value;
        launch(features_kernel<T, kTiles, kLoad>,
               dim3(static_cast<unsigned>(plan.features.grid_x),
                    static_cast<unsigned>(plan.features.grid_y)),
               dim3(plan.features.threads), plan.features.shared_bytes, stream, args);
        // Several map groups only come with the largest groups (plan.h).
        if constexpr (kTiles == kMaxMapTiles) {
          if (plan.map_groups > 1) {
            launch(grad_features_kernel<T, kTiles, kLoad>,
                   dim3(static_cast<unsigned>(plan.grad_features.grid_x)),
                   dim3(plan.grad_features.threads), plan.grad_features.shared_bytes, stream,
                   args);
          }
        }
      });
    }
    const EpilogueArgs epilogue{
        p.logits, p.sab, p.sak, p.san, p.K, p.N, static_cast<const float*>(p.importance),
        static_cast<const float*>(p.logsumexp), static_cast<const float*>(p.grad_importance),
        static_cast<const float*>(p.grad_diversity), scratch.gw, plan.channel_splits,
        plan.w_rows, plan.w_cols, scratch.sums, plan.pixel_blocks, p.grad_logits, p.gab, p.gak,
        p.gan};
    const auto launch_epilogue = [&](auto held) {
      constexpr bool kHeld = decltype(held)::value;
      if (plan.epilogue.grid_x > 0) {
        launch(epilogue_kernel<T, kHeld>, dim3(static_cast<unsigned>(plan.epilogue.grid_x)),
               dim3(plan.epilogue.threads), plan.epilogue.shared_bytes, stream, epilogue);
        return;
      }
      launch(gather_kernel<T, kHeld>, dim3(static_cast<unsigned>(plan.gather.grid_x)),
             dim3(plan.gather.threads), plan.gather.shared_bytes, stream, epilogue);
      launch(logits_kernel<T, kHeld>, dim3(static_cast<unsigned>(plan.logits.grid_x)),
             dim3(plan.logits.threads), plan.logits.shared_bytes, stream, epilogue);
    };
    if (plan.held_maps) {
      launch_epilogue(std::true_type{});
    } else {
      launch_epilogue(std::false_type{});
    }
  });
}

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
