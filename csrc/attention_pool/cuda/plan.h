// How the attention_pool CUDA kernels split one call: tile sizes, how features are loaded, the
// grids, shared memory and scratch of every launch. Torch-free host code, so that the op's host
// code (ops_cuda.cpp), the sanitizer driver and the static SASS report (python -m fusedattn
// sass-report, which prints it per shape) all use exactly the geometry real launches get.
//
// Forward (docs/attention_pool.md): launch 1, "stats", one block per sample, computes the
// sample's statistics once (importance s, the log-sum-exp of every map, the diversity loss) and
// the recalibrated maps w = s sigmoid(a) in the input dtype, padded, into a scratch that
// launch 2, "pool", streams beside the features: v = alpha w f^T on tensor cores, per (sample,
// channel tile, pixel split, map group) block, through a cp.async ring. Where one sample's
// channel tiles give too few blocks to fill the GPU, pixel chunks are split between blocks,
// and their partial sums are added in split order (deterministic): by the last of a tile's
// blocks to finish (counted by an atomic that "stats" zeroes; the same sum whichever block is
// last), with no third launch, where the maps are one 8-map tile and the tile's partial sums
// fit its shared memory at once; else by launch 3, "reduce", spread over many blocks.
// Small maps (the flat variant, whose chunk is all of a tile's pixels, or fewer chunks than
// the ring's stages) are never split: a block streams several channel tiles instead; where
// their maps are also one 8-map tile (own_stats), "pool" computes each sample's statistics and
// w itself from the logits, its first block a sample storing them: one launch, no scratch.
//
// Backward: "pad_gv" (only where grad_pooled's rows are not whole 16-byte chunks: gv padded;
// blocks of kPadGvRows rows and kPadGvColumns columns), "features" (one pass over f: w of its
// pixel chunk from the logits and the saved importance, in shared memory, then gf = alpha gv^T
// w and its channel split's share of gw = alpha gv f, both on tensor cores),
// then two small launches over (sample, pixel tile): "gather" sums the splits'
// gw and each tile's per-map sums, "logits" applies the spec's epilogue to write grad_logits;
// where a sample's pixels fit one block (plan.cpp says when), one launch, "epilogue", does
// both (its block's sums are the sample's).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../common/cuda/launch_plan.h"
#include "../../common/cuda/layout.h"

namespace fusedattn {
namespace attention_pool {
namespace cuda {

// Feature tiles: kChannelTile channels (16 a warp) by kPixelTile pixels, in a ring of
// Tiles::kStages stages.
constexpr int kWarps = 4;
constexpr int kTileThreads = 32 * kWarps;
constexpr int kChannelTile = 16 * kWarps;
constexpr int kPixelTile = 32;
// Bytes a streaming launch keeps in flight an SM to cover memory latency (an H100 or H200:
// about 4 TB/s x 1 us / 132 SMs): where a block's ring holds fewer, more blocks share an SM.
constexpr int64_t kInFlightPerSm = 32 * 1024;
// The flat variant: a channel tile's rows of small maps (N <= kFlatPixels) as one span.
constexpr int kFlatPixels = 64;
// Maps are processed in groups of at most kMaxGroupMaps (8 * map tiles of 8).
constexpr int kMaxMapTiles = 8;
constexpr int kMaxGroupMaps = 8 * kMaxMapTiles;
// The small kernels: one thread per pixel, or per element. "stats" runs one block per sample,
// large enough that its serial round trips to memory are few, small enough for two blocks an
// SM at its registers.
constexpr int kStatsThreads = 512;
constexpr int kStatsUnroll = 16;  // logits each lane loads before using any
// ... or, where a map's pixels are contiguous in 16-byte chunks, chunks each lane loads
constexpr int kStatsVectorChunks = 4;
constexpr int kLogitBatch = 8;   // a pixel's maps loaded before using any (for_each_map)
// ... by "logits" where it does not hold a pixel's maps (K > kLogitBatch: two round trips a
// pass at K = 32, not four; "gather", whose loads of a batch include every split's gw, was
// seen to spill with as many)
constexpr int kLogitsMapBatch = 16;
// "stats" keeps a sample's logits in shared memory between its two passes where they fit in
// this many bytes: its second pass (w and the diversity) then makes no round trip to memory;
// where they are one dense span (logits_as_span), one copy brings them all in before either.
constexpr int64_t kStatsCacheBytes = 64 * 1024;
// "stats"' shared floats before that copy (s, lse, the warps' partial sums): whole 16-byte
// chunks, so that the copy's rows take 16-byte stores.
constexpr int64_t stats_shared_floats(int64_t K) {
  return (2 * K + 3 * kStatsThreads / 32 + 3) / 4 * 4;
}
constexpr int kPadGvThreads = 256;
// Rows a "pad_gv" block writes (gv_rows: whole 16s), and the elements a thread loads before
// storing any.
constexpr int kPadGvRows = 16;
constexpr int kPadGvUnroll = 16;
constexpr int kPadGvColumns = 512;  // and the columns (a large map's rows split between blocks)
// "gather" and "logits": blocks of kEpilogueThreads over pixel tiles of kEpiloguePixels x as
// many, a thread's pixels' loads in flight together (so that at 56x56 a batch's tiles are one
// wave of blocks, not two)
constexpr int kEpilogueThreads = 256;
constexpr int kEpiloguePixels = 2;
constexpr int kEpilogueMinBlocks = 4;  // an SM's blocks: 64 registers a thread
// "epilogue" (gather and logits in one launch, a block per sample, a thread a pixel in whole
// warps) where a sample has at most this many pixels (20x20's 400: one launch, not two)
constexpr int kEpilogueMaxThreads = 512;
constexpr int kReduceThreads = 256;  // divides 8 x kChannelTile: a map tile's partials
constexpr int kReduceBatch = 16;    // a "reduce" thread's partials in flight
// An SM's shared memory, and what the hardware reserves of it per block.
constexpr size_t kSharedPerSm = 233472;  // 228 KB
constexpr size_t kSharedReservedPerBlock = 1024;
// The most shared memory a block may take with as many blocks an SM as `bytes` leaves room for.
constexpr size_t shared_bytes_at_same_occupancy(size_t bytes) {
  return kSharedPerSm / (kSharedPerSm / (bytes + kSharedReservedPerBlock)) -
         kSharedReservedPerBlock;
}
// A split tile's last block copies the splits' partial sums (tile_floats floats each) into its
// shared memory at once, before the flag after them that says the block is last: at most
// finish_max_splits splits (plan.finish_in_pool) in `shared_bytes`.
constexpr size_t kFinishFlagBytes = 16;
constexpr int finish_max_splits(size_t shared_bytes, int tile_floats) {
  return static_cast<int>((shared_bytes - kFinishFlagBytes) /
                          (static_cast<size_t>(tile_floats) * sizeof(float)));
}
constexpr int kGatherMaps = 32;  // maps "gather" sums between two barriers

// How a block gets its feature tiles into shared memory.
enum class FeatureLoad : int {
  kNchw = 0,    // pixels contiguous, channel rows 16-byte aligned: cp.async 16-byte chunks
  kNhwc = 1,    // channels contiguous, pixel rows 16-byte aligned: cp.async, loaded transposed
  kFlat = 2,    // NCHW rows of a small map back to back: one 16-byte-chunked span per tile
                // (and channels whole 16-byte chunks: "pool" stores v in 16-byte rows)
  kScalar = 3,  // any strides: element by element
};
const char* feature_load_name(FeatureLoad load);

// The shared-memory tiles of the kernels for elements of kElementSize bytes (the kernels and
// the plan both read them from here).
template <int kElementSize, int kMapTiles, FeatureLoad kLoad>
struct Tiles {
  // The ring's stages: four in flight of 4.6 KB (16-bit, 8 maps) keep 18 KB in flight a block,
  // so that the two blocks an SM of a batch of few channel tiles (64,256,56x56: 256 blocks)
  // keep kInFlightPerSm. float32 tiles hold twice the bytes, and a fifth stage spilled the
  // largest of their variants.
  static constexpr int kStages = kElementSize == 4 ? 4 : 5;
  static constexpr int kExtent = kLoad == FeatureLoad::kFlat ? kFlatPixels : kPixelTile;
  static constexpr int kMapRows = 8 * kMapTiles;
  static constexpr int kMapRows16 = kMapRows < 16 ? 16 : kMapRows;  // mma's k: maps in 16s
  static constexpr int kLdw = fusedattn::cuda::padded_ld(kExtent, kElementSize);  // maps [row][n]
  static constexpr int kLdf = fusedattn::cuda::padded_ld(kPixelTile, kElementSize);  // [c][n]
  static constexpr int kLdc = fusedattn::cuda::padded_ld(kChannelTile, kElementSize);  // [n][c]
  // A flat tile: the span of a channel tile's rows, a 16-element guard (fragments read on past
  // a row's end), whole chunks.
  static constexpr int kFlatCapacity =
      fusedattn::cuda::whole_chunks(kChannelTile * kFlatPixels + 16, kElementSize);
  static constexpr int kFeatureElements =
      kLoad == FeatureLoad::kNhwc ? kPixelTile * kLdc
      : kLoad == FeatureLoad::kFlat ? kFlatCapacity : kChannelTile * kLdf;
  // Forward ("pool"): kStages stages of (feature tile, map tile [kMapRows][kLdw]). The flat
  // variant's blocks step over channel tiles of the same pixels: their stages hold features
  // only, the map tile is copied once after the ring, then the staging tile of a channel
  // tile's v ([kMapRows][kLdc]).
  static constexpr bool kPoolTileSteps = kLoad == FeatureLoad::kFlat;
  static constexpr int kPoolMapElements = kMapRows * kLdw;
  static constexpr int kPoolStageElements =
      kFeatureElements + (kPoolTileSteps ? 0 : kPoolMapElements);
  static constexpr size_t kPoolSharedBytes =
      static_cast<size_t>(kElementSize) *
      (kStages * kPoolStageElements + (kPoolTileSteps ? kPoolMapElements + kMapRows * kLdc : 0));
  // "pool" computing its sample's statistics (plan.own_stats: one 8-map tile, maps of fewer
  // pixel chunks than the ring's stages, blocks that stream channel tiles): after the ring, the
  // map tiles of every chunk (kOwnChunks; the flat variant's one is its block_maps, then its
  // staging tile), s, lse and the warps' partial sums (kOwnFloats), then the sample's logits
  // (at most kMapRows x kOwnChunks kExtent).
  static constexpr int kOwnChunks = kPoolTileSteps ? 1 : kStages - 1;
  static constexpr size_t kOwnStatsOffset = fusedattn::cuda::whole_chunk_bytes(
      static_cast<size_t>(kElementSize) *
      (kStages * kPoolStageElements + kOwnChunks * kPoolMapElements +
       (kPoolTileSteps ? kMapRows * kLdc : 0)));
  static constexpr int kOwnFloats = 2 * kMapRows + 3 * kWarps;
  static constexpr size_t kOwnLogitsOffset =
      fusedattn::cuda::whole_chunk_bytes(kOwnStatsOffset + sizeof(float) * kOwnFloats);
  static constexpr size_t kPoolOwnStatsSharedBytes = fusedattn::cuda::whole_chunk_bytes(
      kOwnLogitsOffset + static_cast<size_t>(kElementSize) * kMapRows * kOwnChunks * kExtent);
  // Backward ("features"): the chunk's map tile [kMapRows16][kLdw], kStages stages of (feature
  // tile, gv tile [kMapRows16][kLdc]), the gf staging tile ([channel][pixel] with kLdgf,
  // [pixel][channel] with kLdc, or a span: the largest), and the channel parts' gw.
  static constexpr int kWElements = kMapRows16 * kLdw;
  static constexpr int kGvElements = kMapRows16 * kLdc;
  // gv as "features" reads it (grad_pooled, or the copy "pad_gv" writes: rows of whole channel
  // tiles, zero-padded).
  static constexpr int kFeaturesStageElements = kFeatureElements + kGvElements;
  static constexpr int kLdgf = fusedattn::cuda::padded_ld(kExtent, kElementSize);
  static constexpr int kGfElements =
      kChannelTile * kLdgf > kExtent * kLdc ? kChannelTile * kLdgf : kExtent * kLdc;
  // Warps: kPixelBlocks blocks of 16 pixels times kChannelParts parts of the channels.
  static constexpr int kPixelBlocks = kExtent / 16;
  static constexpr int kChannelParts = kWarps / kPixelBlocks;
  static constexpr int kGwFloats = kWarps * 16 * kMapRows;
  static constexpr size_t kFeaturesSharedBytes =
      static_cast<size_t>(kElementSize) *
          (kWElements + kStages * kFeaturesStageElements + kGfElements) +
      sizeof(float) * kGwFloats;
  // "grad_features" (several map groups): one map tile, one gv tile, the staging tile.
  static constexpr size_t kGradFeaturesSharedBytes =
      static_cast<size_t>(kElementSize) * (kWElements + kGvElements + kGfElements);
  // The bytes a ring stage brings from memory, what the ring keeps in flight: its tiles without
  // their padding columns (never copied). `pixels`: a flat span's pixels (the map's N). (gv:
  // kMapRows rows; a padded gv copy's rows past them, to kMapRows16, are left out, so that with
  // one map tile this undercounts.)
  static constexpr int64_t pool_stage_bytes(int64_t pixels) {
    return int64_t{kElementSize} *
           (kPoolTileSteps ? kChannelTile * pixels : (kChannelTile + kMapRows) * kExtent);
  }
  static constexpr int64_t features_stage_bytes(int64_t pixels) {
    return int64_t{kElementSize} *
           (kChannelTile * (kLoad == FeatureLoad::kFlat ? pixels : kExtent) +
            kMapRows * kChannelTile);
  }
  // The blocks an SM holds by shared memory: the kernels' __launch_bounds__ ask for as many,
  // which gives ptxas its register budget (left to itself it was seen to cap a kernel at 80
  // registers and spill).
  static constexpr int blocks_by_shared(size_t bytes) {
    const size_t blocks = kSharedPerSm / (bytes + kSharedReservedPerBlock);
    return blocks < 2 ? 1 : blocks > 8 ? 8 : static_cast<int>(blocks);
  }
  // The scalar variant's address math needs more than the 64 registers of 8 blocks.
  static constexpr int kPoolMinBlocks =
      kLoad == FeatureLoad::kScalar && blocks_by_shared(kPoolSharedBytes) > 6
          ? 6 : blocks_by_shared(kPoolSharedBytes);
  static constexpr int kPoolOwnStatsMinBlocks = blocks_by_shared(kPoolOwnStatsSharedBytes);
  static constexpr int kFeaturesMinBlocks = blocks_by_shared(kFeaturesSharedBytes);
};

// The variant for features of element size `element_size`, strides (sb, sc, sn) in elements,
// base address `address`, N pixels.
FeatureLoad choose_feature_load(int element_size, uintptr_t address, int64_t sb, int64_t sc,
                                int64_t sn, int64_t C, int64_t N);

// Whether "stats" can load the logits (strides sab, sak, san in elements, base `address`) in
// 16-byte chunks along the pixels: unit pixel stride, 16-byte aligned rows, whole chunks a row.
bool logits_in_chunks(int element_size, uintptr_t address, int64_t sab, int64_t sak, int64_t san,
                      int64_t N);

// Whether "stats" can copy a sample's logits (strides sab, sak, san in elements, base
// `address`) into its shared-memory cache as one span: dense (K x N or N x K; a size-1 dim's
// stride is never used), 16-byte aligned samples of whole 16-byte chunks.
bool logits_as_span(int element_size, uintptr_t address, int64_t sab, int64_t sak, int64_t san,
                    int64_t K, int64_t N);

// The backward writes grad_features laid out as the feature tiles it reads (nchw: 16-byte pixel
// rows; nhwc: 16-byte channel rows; flat: one span per channel tile), in whole 16-byte chunks:
// `load` where the gradient's strides (gb, gc, gn), address and sizes allow that, else kScalar.
FeatureLoad choose_backward_load(FeatureLoad load, int element_size, uintptr_t address,
                                 int64_t gb, int64_t gc, int64_t gn, int64_t C, int64_t N);

using Launch = ::fusedattn::cuda::LaunchSpec;

struct ForwardPlan {
  FeatureLoad load;
  int map_tiles;            // 8-map tiles per group: the kernel's accumulators (1, 2, 4 or 8)
  int64_t map_groups;       // groups of 8 * map_tiles maps
  int64_t w_rows;           // map_groups * 8 * map_tiles: the scratch's rows, zero past K
  int64_t w_cols;           // the scratch's row length: N rounded up to whole pixel chunks
  int64_t channel_tiles, pixel_chunks, pixel_splits, chunks_per_split;
  // "pool"'s blocks over the channels: tiles_per_block channel tiles each (more than 1 for
  // small maps), channel_blocks of them a sample
  int64_t tiles_per_block, channel_blocks;
  // "pool" runs its streaming variant (kStreamTiles: an nchw or nhwc block with several tiles)
  bool stream_tiles;
  bool cache_logits;        // "stats" reads its second pass from shared memory (kStatsCacheBytes)
  // The model's "stats" loads logits in 16-byte chunks (logits_in_chunks, for logits in the
  // features' memory format); the launch decides from the logits it gets
  bool vector_logits;
  bool span_logits;  // ... and copies them into its cache as one span (logits_as_span): the same
  // "pool"'s last block of a split tile adds the splits (one 8-map tile, and all the splits'
  // partial sums fit its shared memory at once): no "reduce"
  bool finish_in_pool;
  // "pool" computes its sample's statistics and w (Tiles::kPoolOwnStatsSharedBytes says
  // where), its first block a sample storing them: no "stats" launch, no w scratch. Where the
  // maps are one 8-map tile of fewer pixel chunks than the ring's stages and blocks stream
  // channel tiles: a sample's few blocks each recompute its K x N maps (<= 8 x 128), against
  // the C x N features they stream.
  bool own_stats;
  Launch stats, pool, reduce;
  // The scratch buffers (elements, floats): w, and the pixel splits' partial sums followed,
  // from float arrivals_offset on, by one arrival count (unsigned) per (sample, channel tile,
  // map group) where finish_in_pool
  size_t w_scratch_elements, partial_floats, arrivals_offset;
};

ForwardPlan plan_forward(int64_t B, int64_t C, int64_t K, int64_t N, int element_size,
                         FeatureLoad load, int sm_count);

struct BackwardPlan {
  FeatureLoad load;
  int map_tiles;
  int64_t map_groups, w_rows, w_cols, channel_tiles, pixel_chunks;
  int64_t channel_splits, tiles_per_split;
  int64_t pixel_blocks;     // "gather"'s and "logits"' pixel tiles per sample
  // The epilogue's kernels hold each pixel's maps in registers (K <= kLogitBatch; "gather" and
  // "logits" then take kEpiloguePixels pixels a thread, else one)
  bool held_maps;
  // gv as "features" reads it: straight from grad_pooled (B, K, C) where its rows are whole
  // 16-byte chunks at a 16-byte aligned address (gv_rows K, gv_cols C), else from a copy
  // "pad_gv" writes, rows and row length padded (gv_rows w_rows, gv_cols C rounded up to whole
  // channel tiles).
  bool gv_direct;
  int64_t gv_rows, gv_cols;
  int64_t pad_gv_column_windows;  // "pad_gv": kPadGvColumns-column windows of its row tiles
  Launch pad_gv, features, grad_features, gather, logits;
  Launch epilogue;          // in gather's and logits' place where a sample is one block
  // Unless gv_direct, the padded gv; where several map groups, w (B, w_rows, w_cols) for
  // "grad_features" (both the input dtype); each channel split's gw (B, splits, w_rows,
  // w_cols); each pixel tile's per-map sums (none with "epilogue").
  size_t gv_scratch_elements, w_scratch_elements, gw_floats, sums_floats;
};

// grad_pooled_address: where grad_pooled (contiguous) starts.
BackwardPlan plan_backward(int64_t B, int64_t C, int64_t K, int64_t N, int element_size,
                           FeatureLoad load, uintptr_t grad_pooled_address, int sm_count);

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
