// The forward (plan.h): "stats" (one block per sample: importance and log-sum-exp, then one
// pass over the pixels for the diversity and the recalibrated maps w, once per sample, reading
// the logits again from its shared-memory copy where they fit), "pool"
// (v = alpha w f^T, the one pass over the features, on tensor cores through a cp.async ring;
// where pixel chunks were split between blocks, the last block of a tile adds their partial
// sums in split order where they fit its shared memory, else a launch of its own, "reduce").
// Where small maps' blocks stream channel tiles and the maps are one 8-map tile, "pool" computes
// each sample's statistics and w itself (own_statistics; plan.own_stats): no "stats" launch.
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
  bool span_logits;    // copy them into that cache as one span first (logits_as_span)
  // (B, arrivals_per_sample) zeroed for "pool"'s split tiles, or nullptr
  unsigned* arrivals;
  int64_t arrivals_per_sample;
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
  // Where the sample's logits are one dense span, a single cp.async copy brings all of them into
  // the cache (one round trip to memory, nothing held in registers) and both passes read that;
  // else the statistics copy each map's row into the cache as they read it.
  const T* logits = a;
  int64_t sak = p.sak, san = p.san;
  if (p.span_logits) {
    copy_chunks_async<T, kStatsThreads>(cache, a, static_cast<int>(p.K * p.N));
    ptx::cp_async_commit_group();
    ptx::cp_async_wait_all();
    __syncthreads();
    logits = cache;
    sample_statistics<kStatsThreads>(logits, sak, san, p.K, p.N, s, lse, scratch,
                                     static_cast<T*>(nullptr), false);
  } else {
    sample_statistics<kStatsThreads>(a, sak, san, p.K, p.N, s, lse, scratch, cache,
                                     p.vector_logits);
    if (cache != nullptr) {
      logits = cache;
      sak = p.N;
      san = 1;
    }
  }
  if (p.arrivals != nullptr) {
    for (int64_t i = threadIdx.x; i < p.arrivals_per_sample; i += kStatsThreads) {
      p.arrivals[b * p.arrivals_per_sample + i] = 0u;
    }
  }
  for (int64_t k = threadIdx.x; k < p.K; k += kStatsThreads) {
    p.importance[b * p.K + k] = s[k];
    if (p.logsumexp != nullptr) p.logsumexp[b * p.K + k] = lse[k];
  }
  // One pass over the pixels: the recalibrated maps w into the scratch (zero past K rows and N
  // pixels) and D = sum_n max_k s[k] p[k, n], the logits read again from the cache if any.
  T* w = static_cast<T*>(p.w) + b * p.w_rows * p.w_cols;
  float partial = 0.f;
  for (int64_t n = threadIdx.x; n < p.w_cols; n += kStatsThreads) {
    if (n < p.N) {
      PixelWinner winner;
      for_each_logit(logits, sak, san, p.K, n, [&](int64_t k, float x) {
        if (p.diversity != nullptr) winner.add(k, fm::weighted_prob(s[k], x, lse[k]));
        w[k * p.w_cols + n] = from_float<T>(fm::recalibrated_map(s[k], x));
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
  // (B, channel tiles, map groups) blocks done, zeroed by "stats", where the last block of a
  // split tile adds the splits (plan.finish_in_pool), else nullptr
  unsigned* arrivals;
  int64_t channel_tiles, pixel_splits, chunks_per_split, pixel_chunks;
  int64_t tiles_per_block, channel_blocks;  // channel tiles a block streams, blocks a sample
  // own_stats (plan.h): the logits (one dense span, 16-byte aligned, where span_logits) and
  // the statistics' outputs, as "stats" takes them
  const void* logits;
  int64_t sab, sak, san;
  float* importance;
  float* logsumexp;  // or nullptr
  float* diversity;  // or nullptr
  bool span_logits;
};

// The pool's products over a flat tile for 16-bit T: a warp's 16 channels, rows of N pixels
// back to back in the span (not 16-byte aligned: no ldmatrix), times the map tiles of the
// group. mma's reduction order is free as long as A and B agree, so lane quad q takes pixels
// 16 q to 16 q + 15, four a k-step (slots 2q, 2q + 1 and 2q + 8, 2q + 9 of step s: pixels
// 16 q + 4 s + {0, 1} and {2, 3}): a lane loads each of its two rows' 16 pixels as 9 aligned
// 32-bit words realigned by a funnel shift each (rows start on odd elements where N is odd),
// masked past N (the next row's pixels, maybe not finite), and each map's 16 as two 16-byte
// loads. What is fixed per lane (offsets, shift, masks) is computed once per block.
template <typename T, int kMapTiles, int kLdw>
class FlatProducts {
  static_assert(sizeof(T) == 2, "16-bit elements: two a 32-bit word");
  int first_word_, row_words_, shift_, w_offset_;
  uint32_t mask_[8];

 public:
  __device__ __forceinline__ FlatProducts(int N, int warp) {
    const Lane l = Lane::of_this_thread();
    const int x = (16 * warp + l.group) * N + 16 * l.quad;  // the first row's first pixel
    first_word_ = x >> 1;
    row_words_ = 4 * N;  // rows group and group + 8: 8 N elements apart, an even number
    shift_ = 16 * (x & 1);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int n = 16 * l.quad + 2 * i;
      mask_[i] = (n < N ? 0xffffu : 0u) | (n + 1 < N ? 0xffff0000u : 0u);
    }
    w_offset_ = l.group * kLdw + 16 * l.quad;
  }

  __device__ __forceinline__ void operator()(float (&acc)[kMapTiles][4], const T* span,
                                             const T* wt) const {
    const uint32_t* words = reinterpret_cast<const uint32_t*>(span) + first_word_;
    uint32_t a[2][8];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t* row = words + h * row_words_;
      uint32_t lo = row[0];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const uint32_t hi = row[i + 1];
        const uint64_t both = static_cast<uint64_t>(hi) << 32 | lo;
        a[h][i] = static_cast<uint32_t>(both >> shift_) & mask_[i];
        lo = hi;
      }
    }
#pragma unroll
    for (int j = 0; j < kMapTiles; ++j) {
      const T* w_row = wt + 8 * j * kLdw + w_offset_;
      const uint4 u0 = *reinterpret_cast<const uint4*>(w_row);
      const uint4 u1 = *reinterpret_cast<const uint4*>(w_row + 8);
      const uint32_t b[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        const uint32_t fa[4] = {a[0][2 * s], a[1][2 * s], a[0][2 * s + 1], a[1][2 * s + 1]};
        const uint32_t fb[2] = {b[2 * s], b[2 * s + 1]};
        ptx::mma_m16n8k16<T>(acc[j], fa, fb, acc[j]);
      }
    }
  }
};

// (what the other variants construct in FlatProducts' place)
struct NoProducts {
  __device__ __forceinline__ NoProducts(int, int) {}
};

// Where a channel tile's pixel chunks were split between blocks and their partial sums fit
// shared memory at once (plan.finish_in_pool: one 8-map tile; the launch gives the block room for
// them, as much as keeps its blocks an SM), the last of its blocks to finish
// adds them, in split order whichever block that is (the same sum: deterministic), and stores
// v (rows_left x cols_left of the tile, rows C apart). A block's arrival is counted by an
// acquire-release atomic after a barrier that follows every thread's partial stores (and
// fence), so the last block sees all of them; it copies them into its shared memory with
// cp.async, all in flight at once and in no registers.
template <typename T, typename Tiles>
__device__ __forceinline__ void finish_split_tile(const float* partial, int64_t split_stride,
                                               int splits, unsigned* arrivals, T* v, int64_t C,
                                               int64_t rows_left, int64_t cols_left,
                                               float alpha, unsigned char* smem) {
  constexpr int kTileFloats = Tiles::kMapRows * kChannelTile;
  constexpr int kPerThread = kTileFloats / kTileThreads;
  static_assert(kTileFloats % kTileThreads == 0, "whole rows of partial sums");
  float* const staged = reinterpret_cast<float*>(smem);  // [splits][kTileFloats], then the flag
  int* const last = reinterpret_cast<int*>(staged + splits * kTileFloats);
  __threadfence();  // (the release below covers the block's stores through the barrier; the
                    // fence, once a block, keeps the pattern CUDA's guide documents)
  __syncthreads();  // every thread's partial sums stored, and done with shared memory
  if (threadIdx.x == 0) {
    *last = ptx::atomic_add_acq_rel(arrivals, 1u) == static_cast<unsigned>(splits - 1);
  }
  __syncthreads();
  if (!*last) return;
  constexpr int kTileChunks = kTileFloats / 4;
#pragma unroll 1
  for (int c = threadIdx.x; c < splits * kTileChunks; c += kTileThreads) {
    const int j = c / kTileChunks, offset = 4 * (c % kTileChunks);
    ptx::cp_async_cg(staged + j * kTileFloats + offset, partial + j * split_stride + offset, 16);
  }
  ptx::cp_async_wait_all();
  __syncthreads();
  float sum[kPerThread] = {};  // (one chain a partial sum, in split order)
#pragma unroll 1
  for (int j = 0; j < splits; ++j) {
#pragma unroll
    for (int e = 0; e < kPerThread; ++e) {
      sum[e] += staged[j * kTileFloats + e * kTileThreads + threadIdx.x];
    }
  }
#pragma unroll
  for (int e = 0; e < kPerThread; ++e) {
    const int i = e * kTileThreads + threadIdx.x;
    const int row = i / kChannelTile, c = i % kChannelTile;
    if (row < rows_left && c < cols_left) v[row * C + c] = from_float<T>(alpha * sum[e]);
  }
}

// (own_statistics: a map's <= 128 pixels, a lane's 4 of 32 a warp at once; more spilled)
constexpr int kOwnStatsUnroll = 4;

// A "pool" block that computes its sample's statistics (plan.own_stats: one 8-map tile of
// fewer pixel chunks than the ring's stages): the sample's logits into shared memory (as a
// span by cp.async where they are one, else element by element in one unrolled batch), s and
// lse, then w = s sigmoid(a) into the block's map tiles (chunk c's at maps + c
// kPoolMapElements; zero past K maps and N pixels), and where `store` (the sample's first
// block) the statistics and the diversity. The arithmetic of "stats" (sample_statistics,
// fm::recalibrated_map, from_float), so the sample's blocks get the same bits, and the
// backward the w it recomputes from the importance. Its only loop over global memory is the
// span's 16-byte copies (the element-by-element batch is unrolled; the stores are one a
// thread). The maps are read after the main loop's first barrier.
template <typename T, typename Tiles>
__device__ __forceinline__ void own_statistics(const PoolArgs& p, int64_t b, T* maps, bool store,
                                               unsigned char* smem) {
  constexpr int kMaxLogits = Tiles::kMapRows * Tiles::kOwnChunks * Tiles::kExtent;
  float* const s = reinterpret_cast<float*>(smem + Tiles::kOwnStatsOffset);  // [kMapRows]
  float* const lse = s + Tiles::kMapRows;                                   // [kMapRows]
  float* const partials = lse + Tiles::kMapRows;                            // [3 kWarps]
  T* const logits = reinterpret_cast<T*>(smem + Tiles::kOwnLogitsOffset);   // [kMaxLogits]
  const T* a = static_cast<const T*>(p.logits) + b * p.sab;
  const int K = static_cast<int>(p.K), N = static_cast<int>(p.N);
  // (the cache in the span's own layout, at the same strides from its start; else K x N)
  int64_t sak = p.sak, san = p.san;
  if (p.span_logits) {
    copy_chunks_async<T, kTileThreads>(logits, a, K * N);
    ptx::cp_async_commit_group();
  } else {
#pragma unroll
    for (int u = 0; u < (kMaxLogits + kTileThreads - 1) / kTileThreads; ++u) {
      const int i = threadIdx.x + u * kTileThreads;
      if (i < K * N) logits[i] = a[i / N * p.sak + i % N * p.san];
    }
    sak = N;
    san = 1;
  }
  ptx::cp_async_wait_all();  // (and the ring's first stages, issued before)
  __syncthreads();
  sample_statistics<kTileThreads, kOwnStatsUnroll, false>(
      static_cast<const T*>(logits), sak, san, p.K, p.N, s, lse, partials,
      static_cast<T*>(nullptr), false);
  const int row_pixels = static_cast<int>(p.pixel_chunks) * Tiles::kExtent;
  for (int i = threadIdx.x; i < Tiles::kMapRows * row_pixels; i += kTileThreads) {
    const int r = i / row_pixels, n = i % row_pixels;
    const float x =
        r < K && n < N ? fm::recalibrated_map(s[r], to_float(logits[r * sak + n * san])) : 0.f;
    maps[n / Tiles::kExtent * Tiles::kPoolMapElements + r * Tiles::kLdw + n % Tiles::kExtent] =
        from_float<T>(x);
  }
  if (!store) return;
  static_assert(Tiles::kMapRows <= kTileThreads, "a thread a map");
  if (threadIdx.x < K) {
    p.importance[b * K + threadIdx.x] = s[threadIdx.x];
    if (p.logsumexp != nullptr) p.logsumexp[b * K + threadIdx.x] = lse[threadIdx.x];
  }
  if (p.diversity != nullptr) {
    float partial = 0.f;  // D = sum_n max_k s[k] p[k, n], a thread's pixels
    for (int n = threadIdx.x; n < N; n += kTileThreads) {
      PixelWinner winner;
      for (int k = 0; k < K; ++k) {
        winner.add(k, fm::weighted_prob(s[k], to_float(logits[k * sak + n * san]), lse[k]));
      }
      partial += winner.best;
    }
    const float D = block_sum<kTileThreads>(partial, partials);
    if (threadIdx.x == 0) p.diversity[b] = 1.f - D;
  }
}

// Blocks over (sample, channel tiles, pixel split, map group). A step of the ring is a pixel
// chunk of the block's channel tile. Where the block streams its tiles_per_block channel tiles
// (the flat variant, whose chunk is all of a tile's pixels, and kStreamTiles: small maps), a
// step is a chunk of one of them (chunks inner), each tile's v stored after its last chunk;
// the flat variant's steps all read the block's one map tile. (Streaming is a variant of its
// own so that the other kernels' loops keep no store.)
template <typename T, int kMapTiles, FeatureLoad kLoad, bool kStreamTiles, bool kOwnStats>
__global__ void __launch_bounds__(kTileThreads,
                                  (kOwnStats
                                       ? Tiles<sizeof(T), kMapTiles, kLoad>::kPoolOwnStatsMinBlocks
                                       : Tiles<sizeof(T), kMapTiles, kLoad>::kPoolMinBlocks))
    pool_kernel(PoolArgs p) {
  using Tiles = ::fusedattn::attention_pool::cuda::Tiles<sizeof(T), kMapTiles, kLoad>;
  constexpr int kStages = Tiles::kStages;
  constexpr bool kTileSteps = Tiles::kPoolTileSteps;  // (the flat variant)
  constexpr bool kStreams = kTileSteps || kStreamTiles;
  static_assert(!(kTileSteps && kStreamTiles), "the flat variant always streams");
  static_assert(!kOwnStats || (kStreams && kMapTiles == 1), "own statistics: plan.own_stats");
  T* smem = dynamic_shared_memory<T>();
  // (flat: the block's map tile [kMapRows][kLdw] and v's staging tile [kMapRows][kLdc])
  T* const block_maps = smem + kStages * Tiles::kPoolStageElements;
  T* const staged = block_maps + Tiles::kPoolMapElements;
  const BlockIndex3 at(blockIdx.x, p.channel_blocks, p.pixel_splits);
  const int64_t b = at.outer, split = at.inner;
  const int64_t tile_begin = at.middle * p.tiles_per_block;
  const int64_t tile_end = tile_begin + p.tiles_per_block < p.channel_tiles
                               ? tile_begin + p.tiles_per_block : p.channel_tiles;
  const int64_t group = blockIdx.y;
  const int64_t c0 = tile_begin * kChannelTile;
  const int64_t chunk_begin = split * p.chunks_per_split;
  const int64_t chunk_end = chunk_begin + p.chunks_per_split < p.pixel_chunks
                                ? chunk_begin + p.chunks_per_split : p.pixel_chunks;
  const int chunks = static_cast<int>(chunk_end - chunk_begin);  // (1 for the flat variant)
  const int steps = static_cast<int>(kStreams ? (tile_end - tile_begin) * chunks : chunks);
  const T* f = static_cast<const T*>(p.features) + b * p.sfb;
  // (no scratch with own statistics, whose maps own_statistics writes: its cursor, never
  // used, points at them)
  const T* w = kOwnStats ? block_maps
                         : static_cast<const T*>(p.w) +
                               (b * p.w_rows + group * Tiles::kMapRows) * p.w_cols;

  // Cursors over the steps' tiles: each load issues the copies of the next one into stage
  // `stage` (w's scratch holds whole tiles) and moves on to the tile's next chunk, or back to
  // the first chunk of the next channel tile.
  const int64_t n0 = chunk_begin * Tiles::kExtent;
  TileCopy<T, Tiles::kMapRows, Tiles::kExtent, Tiles::kLdw, kTileThreads> copy_maps(w + n0,
                                                                                   p.w_cols);
  FeatureTileCopy<T, Tiles, kLoad> copy_features(p, f + c0 * p.sfc + n0 * p.sfn);
  // (streaming: the pixels from a tile's last chunk back to its first)
  const int rewind = kStreams ? (chunks - 1) * Tiles::kExtent : 0;
  const int64_t next_tile = kChannelTile * p.sfc - rewind * p.sfn;
  int channels_left = loop_count(p.C - c0);
  int pixels_left = loop_count(p.N - n0);
  int load_chunk = 0;  // the next load's chunk of its channel tile
  auto load = [&](int stage) {
    T* ft = smem + stage * Tiles::kPoolStageElements;
    copy_features(ft, p, channels_left, pixels_left);
    if constexpr (!kTileSteps && !kOwnStats) copy_maps.whole(ft + Tiles::kFeatureElements);
    if (!kStreams || ++load_chunk < chunks) {
      copy_features.advance(Tiles::kExtent * p.sfn);
      if constexpr (!kOwnStats) copy_maps.advance(Tiles::kExtent);
      pixels_left -= Tiles::kExtent;
    } else {
      load_chunk = 0;
      copy_features.advance(next_tile);
      if constexpr (!kOwnStats) copy_maps.advance(-rewind);
      pixels_left += rewind;
      channels_left -= kChannelTile;
    }
  };

  // The lane's results: channels tile_c0 + 16 warp + group (+ 8), maps 8 j + 2 quad (+ 1). A
  // streaming block stores each tile's v in the loop, so through shared memory as 16-byte rows
  // (it streams only where the channels are whole chunks), staged in the flat variant's own
  // tile or else in the stage every warp just read (reloaded after the next step's barrier).
  // Otherwise the tile is stored after the loop, element by element: a pixel split's partial
  // sums, or v for any C.
  const int warp = threadIdx.x / 32;
  const Lane l = Lane::of_this_thread();
  float acc[kMapTiles][4] = {};
  const int64_t k0 = group * Tiles::kMapRows;
  auto for_each_result = [&](auto&& fn) {
#pragma unroll
    for (int j = 0; j < kMapTiles; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        fn(16 * warp + l.group + 8 * (e >> 1), 8 * j + 2 * l.quad + (e & 1), acc[j][e]);
        acc[j][e] = 0.f;
      }
    }
  };
  auto store_staged = [&](int64_t ct, T* staging) {
    static_assert(Tiles::kPoolTileSteps ||
                      Tiles::kPoolStageElements >= Tiles::kMapRows * Tiles::kLdc,
                  "a stage holds v's staging tile");
    if constexpr (!kTileSteps) __syncthreads();  // every warp's last reads of the stage are done
    for_each_result([&](int c, int r, float x) {
      staging[r * Tiles::kLdc + c] = from_float<T>(p.alpha * x);
    });
    __syncthreads();  // (the next step's writes follow its own barrier, after these reads)
    const int64_t tile_c0 = ct * kChannelTile;
    store_tile<T, Tiles::kMapRows, kChannelTile, Tiles::kLdc, kTileThreads, true>(
        static_cast<T*>(p.pooled) + (b * p.K + k0) * p.C + tile_c0, staging, p.C, 1, p.K - k0,
        p.C - tile_c0);
  };
  auto store_unstaged = [&](int64_t ct) {
    const int64_t tile_c0 = ct * kChannelTile;
    for_each_result([&](int c, int r, float x) {
      if (p.partial != nullptr) {
        p.partial[(((b * p.channel_tiles + ct) * p.pixel_splits + split) * p.w_rows + k0 + r) *
                  kChannelTile + c] = x;
      } else if (k0 + r < p.K && c < p.C - tile_c0) {
        static_cast<T*>(p.pooled)[(b * p.K + k0 + r) * p.C + tile_c0 + c] =
            from_float<T>(p.alpha * x);
      }
    });
  };

  constexpr bool kFlatProducts = kLoad == FeatureLoad::kFlat && sizeof(T) == 2;
  const std::conditional_t<kFlatProducts, FlatProducts<T, kMapTiles, Tiles::kLdw>, NoProducts>
      flat_products(static_cast<int>(p.N), warp);
  if constexpr (kTileSteps && !kOwnStats) {
    if (steps > 0) copy_maps.whole(block_maps);  // (in the first stage's group)
  }
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < steps) load(i);
    ptx::cp_async_commit_group();  // (empty groups keep the count uniform)
  }
  // (the sample's logits, after the first stages' copies: their round trips overlap)
  if constexpr (kOwnStats) {
    own_statistics<T, Tiles>(p, b, block_maps, at.middle == 0,
                             reinterpret_cast<unsigned char*>(smem));
  }
  int chunk = 0;  // the step's chunk of channel tile `tile`
  int64_t tile = tile_begin;
#pragma unroll 1  // (one stage per iteration: unrolled, the ring only grows the code)
  for (int step = 0; step < steps; ++step) {
    ptx::cp_async_wait_group<kStages - 2>();
    __syncthreads();  // this stage landed for every thread; the previous one is consumed
    if (step + kStages - 1 < steps) load((step + kStages - 1) % kStages);
    ptx::cp_async_commit_group();
    const T* ft = smem + (step % kStages) * Tiles::kPoolStageElements;
    const T* wt = kTileSteps  ? block_maps
                  : kOwnStats ? block_maps + chunk * Tiles::kPoolMapElements
                              : ft + Tiles::kFeatureElements;
    if constexpr (kFlatProducts) {
      flat_products(acc, ft, wt);
    } else {
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
    if constexpr (kStreams) {
      if (++chunk == chunks) {
        store_staged(tile,
                     kTileSteps ? staged : smem + (step % kStages) * Tiles::kPoolStageElements);
        chunk = 0;
        ++tile;
      }
    }
  }
  ptx::cp_async_wait_all();  // no copy outlives the block (the last groups are empty)
  if constexpr (!kStreams) {
    store_unstaged(tile_begin);
    // (One map tile only: more tiles' partial sums are 2-8 KB a split, and the code to add
    // them would grow kernels whose every block runs the main loop alone, "reduce" adding.)
    if constexpr (kMapTiles == 1) {
      if (p.arrivals != nullptr) {
        const int64_t ct = tile_begin, c0 = ct * kChannelTile;
        finish_split_tile<T, Tiles>(
            p.partial + ((b * p.channel_tiles + ct) * p.pixel_splits * p.w_rows + k0) *
                            kChannelTile,
            p.w_rows * kChannelTile, static_cast<int>(p.pixel_splits),
            p.arrivals + (b * p.channel_tiles + ct) * gridDim.y + group,
            static_cast<T*>(p.pooled) + (b * p.K + k0) * p.C + c0, p.C, p.K - k0, p.C - c0,
            p.alpha, reinterpret_cast<unsigned char*>(smem));
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
  const dim3 grid(static_cast<unsigned>(plan.pool.grid_x),
                  static_cast<unsigned>(plan.pool.grid_y));
  const auto run = [&](auto kernel) {
    launch(kernel, grid, dim3(plan.pool.threads), plan.pool.shared_bytes, stream, args);
  };
  constexpr bool kTiled = kLoad == FeatureLoad::kNchw || kLoad == FeatureLoad::kNhwc;
  // (own statistics: one map tile, blocks that stream channel tiles)
  if constexpr (kMapTiles == 1 && kLoad != FeatureLoad::kScalar) {
    if (plan.own_stats) return run(pool_kernel<T, 1, kLoad, kTiled, true>);
  }
  if constexpr (kTiled) {
    if (plan.stream_tiles) return run(pool_kernel<T, kMapTiles, kLoad, true, false>);
  }
  run(pool_kernel<T, kMapTiles, kLoad, false, false>);
}

}  // namespace

int device_sm_count(int device) { return device_info(device).sm_count; }

void launch_forward(const ForwardParams& p, const ForwardPlan& plan, DType dtype,
                    const ForwardScratch& scratch, cudaStream_t stream) {
  dispatch_dtype(dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    const uintptr_t logits_address = reinterpret_cast<uintptr_t>(p.logits);
    const bool vector_logits = logits_in_chunks(static_cast<int>(sizeof(T)), logits_address,
                                                p.sab, p.sak, p.san, p.N);
    const bool span_logits =
        plan.cache_logits && logits_as_span(static_cast<int>(sizeof(T)), logits_address, p.sab,
                                            p.sak, p.san, p.K, p.N);
    // (the split tiles' arrival counts, after their partial sums in the same scratch)
    const bool split = plan.pixel_splits > 1 && plan.partial_floats > 0;
    unsigned* arrivals = split && plan.finish_in_pool
                             ? reinterpret_cast<unsigned*>(scratch.partial + plan.arrivals_offset)
                             : nullptr;
    const StatsArgs stats{p.logits, p.sab, p.sak, p.san, p.K, p.N,
                          static_cast<float*>(p.importance), static_cast<float*>(p.logsumexp),
                          static_cast<float*>(p.diversity), scratch.w, plan.w_rows, plan.w_cols,
                          plan.cache_logits, vector_logits, span_logits, arrivals,
                          plan.channel_tiles * plan.map_groups};
    if (plan.stats.grid_x > 0) {  // (none where "pool" computes the statistics: own_stats)
      launch(stats_kernel<T>, dim3(static_cast<unsigned>(plan.stats.grid_x)),
             dim3(plan.stats.threads), plan.stats.shared_bytes, stream, stats);
    }
    if (plan.pool.grid_x == 0) return;
    const PoolArgs pool{p.features, p.sfb, p.sfc, p.sfn, p.C, p.N, p.K, scratch.w, plan.w_rows,
                        plan.w_cols, fm::pool_scale<float>(p.mean_pool, p.N), p.pooled,
                        split ? scratch.partial : nullptr, arrivals, plan.channel_tiles,
                        plan.pixel_splits, plan.chunks_per_split, plan.pixel_chunks,
                        plan.tiles_per_block, plan.channel_blocks, p.logits, p.sab, p.sak,
                        p.san, static_cast<float*>(p.importance),
                        static_cast<float*>(p.logsumexp), static_cast<float*>(p.diversity),
                        logits_as_span(static_cast<int>(sizeof(T)), logits_address, p.sab,
                                       p.sak, p.san, p.K, p.N)};
    dispatch_variant(plan.map_tiles, plan.load, [&](auto tiles, auto load) {
      launch_pool<T, decltype(tiles)::value, decltype(load)::value>(pool, plan, stream);
    });
    if (plan.reduce.grid_x > 0) {
      launch(reduce_kernel<T>, dim3(static_cast<unsigned>(plan.reduce.grid_x),
                                    static_cast<unsigned>(plan.reduce.grid_y)),
             dim3(plan.reduce.threads), 0, stream, pool, static_cast<int64_t>(8 * plan.map_tiles));
    }
  });
}

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
