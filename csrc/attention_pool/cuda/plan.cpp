#include "plan.h"

#include <algorithm>
#include <type_traits>

namespace fusedattn {
namespace attention_pool {
namespace cuda {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t clamp(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

// `pieces` (a block's pixel chunks or channel tiles) split between blocks so that `units`
// blocks times the splits come nearest to `per_sm` blocks per SM, no split empty. (Nearest,
// not at least: a split costs partial sums to write and add; the blocks stay at 2/3 per_sm an
// SM or more.)
struct Split {
  int64_t splits, per_split;
};
Split split(int64_t units, int64_t pieces, int sm_count, int64_t per_sm = 2) {
  const int64_t wanted = per_sm * static_cast<int64_t>(sm_count > 0 ? sm_count : 1);
  const int64_t splits = units > 0 ? clamp((wanted + units / 2) / units, 1, pieces) : 1;
  const int64_t per_split = ceil_div(pieces, splits);
  return {ceil_div(pieces, per_split), per_split};
}

struct MapTiling {
  int map_tiles;
  int64_t map_groups, w_rows;
};

MapTiling map_tiling(int64_t K) {
  const int64_t padded = ceil_div(K > 0 ? K : 1, 8) * 8;
  int tiles = 1;
  while (tiles < kMaxMapTiles && 8 * tiles < padded) tiles *= 2;
  const int64_t groups = ceil_div(padded, 8 * tiles);
  return {tiles, groups, groups * 8 * tiles};
}

// Calls fn(Tiles<...>{}) for the element size, map tiles and feature load of a plan.
template <typename Fn>
void with_tiles(int element_size, int map_tiles, FeatureLoad load, Fn&& fn) {
  auto by_load = [&](auto size, auto tiles) {
    constexpr int kSize = decltype(size)::value, kMapTiles = decltype(tiles)::value;
    switch (load) {
      case FeatureLoad::kNchw: return fn(Tiles<kSize, kMapTiles, FeatureLoad::kNchw>{});
      case FeatureLoad::kNhwc: return fn(Tiles<kSize, kMapTiles, FeatureLoad::kNhwc>{});
      case FeatureLoad::kFlat: return fn(Tiles<kSize, kMapTiles, FeatureLoad::kFlat>{});
      case FeatureLoad::kScalar: return fn(Tiles<kSize, kMapTiles, FeatureLoad::kScalar>{});
    }
  };
  auto by_tiles = [&](auto size) {
    switch (map_tiles) {
      case 1: return by_load(size, std::integral_constant<int, 1>{});
      case 2: return by_load(size, std::integral_constant<int, 2>{});
      case 4: return by_load(size, std::integral_constant<int, 4>{});
      default: return by_load(size, std::integral_constant<int, kMaxMapTiles>{});
    }
  };
  if (element_size == 4) return by_tiles(std::integral_constant<int, 4>{});
  return by_tiles(std::integral_constant<int, 2>{});
}

// Round trips of sample_statistics (common.cuh): warps share a map's pixels when K is small,
// each lane loading `per_lane` logits at a time.
int64_t stats_rounds(int64_t K, int64_t N, int64_t per_lane) {
  int64_t warps_per_map = 1;
  while (warps_per_map * 2 * K <= kStatsThreads / 32) warps_per_map *= 2;
  return ceil_div(N, 32 * warps_per_map * per_lane) *
         ceil_div(K, kStatsThreads / 32 / warps_per_map);
}

int64_t pixel_extent(FeatureLoad load) {
  return load == FeatureLoad::kFlat ? kFlatPixels : kPixelTile;
}

}  // namespace

const char* feature_load_name(FeatureLoad load) {
  switch (load) {
    case FeatureLoad::kNchw: return "nchw";
    case FeatureLoad::kNhwc: return "nhwc";
    case FeatureLoad::kFlat: return "flat";
    case FeatureLoad::kScalar: return "scalar";
  }
  return "?";
}

FeatureLoad choose_feature_load(int element_size, uintptr_t address, int64_t sb, int64_t sc,
                                int64_t sn, int64_t C, int64_t N) {
  const int64_t v = fusedattn::cuda::chunk_elements(element_size);
  const bool aligned = address % 16 == 0 && sb % v == 0;
  if (aligned && (sn == 1 || N == 1) && sc % v == 0) return FeatureLoad::kNchw;
  if (aligned && sc == 1 && sn % v == 0 && N > 1) return FeatureLoad::kNhwc;
  // Whole rows of a small map back to back: with whole 16-byte chunks of channels, a channel
  // tile is one span of whole chunks (kChannelTile is whole chunks; the last tile ends with the
  // tensor) and a row of v is whole chunks.
  if (aligned && sn == 1 && sc == N && N <= kFlatPixels && C % v == 0) {
    static_assert(kChannelTile % 8 == 0, "a channel tile's span: whole 16-byte chunks");
    return FeatureLoad::kFlat;
  }
  return FeatureLoad::kScalar;
}

FeatureLoad choose_backward_load(FeatureLoad load, int element_size, uintptr_t address,
                                 int64_t gb, int64_t gc, int64_t gn, int64_t C, int64_t N) {
  const int64_t v = fusedattn::cuda::chunk_elements(element_size);
  const bool aligned = address % 16 == 0 && gb % v == 0;
  // The gradient is stored in whole 16-byte chunks: rows (and a flat tile's span) must hold
  // whole chunks too.
  switch (load) {
    case FeatureLoad::kNchw:
      return aligned && gn == 1 && gc % v == 0 && N % v == 0 ? load : FeatureLoad::kScalar;
    case FeatureLoad::kNhwc:
      return aligned && gc == 1 && gn % v == 0 && C % v == 0 ? load : FeatureLoad::kScalar;
    case FeatureLoad::kFlat:
      return aligned && gn == 1 && gc == N && (C * N) % v == 0 ? load : FeatureLoad::kScalar;
    default:
      return FeatureLoad::kScalar;
  }
}

bool logits_in_chunks(int element_size, uintptr_t address, int64_t sab, int64_t sak, int64_t san,
                      int64_t N) {
  const int64_t e = element_size;
  return san == 1 && address % 16 == 0 && (sab * e) % 16 == 0 && (sak * e) % 16 == 0 &&
         (N * e) % 16 == 0;
}

bool logits_as_span(int element_size, uintptr_t address, int64_t sab, int64_t sak, int64_t san,
                    int64_t K, int64_t N) {
  const int64_t e = element_size;
  const bool maps_rows = (N == 1 || san == 1) && (K == 1 || sak == N);   // K x N
  const bool pixel_rows = (K == 1 || sak == 1) && (N == 1 || san == K);  // N x K
  return (maps_rows || pixel_rows) && address % 16 == 0 && (sab * e) % 16 == 0 &&
         (K * N * e) % 16 == 0;
}

ForwardPlan plan_forward(int64_t B, int64_t C, int64_t K, int64_t N, int element_size,
                         FeatureLoad load, int sm_count) {
  ForwardPlan p{};
  p.load = load;
  const MapTiling maps = map_tiling(K);
  p.map_tiles = maps.map_tiles;
  p.map_groups = maps.map_groups;
  p.w_rows = maps.w_rows;
  const int64_t extent = pixel_extent(load);
  p.pixel_chunks = ceil_div(N, extent);
  p.w_cols = p.pixel_chunks * extent;
  p.channel_tiles = ceil_div(C, kChannelTile);
  // (in flight: the ring's stages but the one being read)
  int64_t pool_shared = 0, own_stats_shared = 0, in_flight = 0, stages = 0;
  with_tiles(element_size, p.map_tiles, load, [&](auto tiles_of) {
    using Tiles = decltype(tiles_of);
    pool_shared = Tiles::kPoolSharedBytes;
    own_stats_shared = Tiles::kPoolOwnStatsSharedBytes;
    stages = Tiles::kStages;
    in_flight = (Tiles::kStages - 1) * Tiles::pool_stage_bytes(N);
  });
  // Blocks that stream channel tiles: at least two an SM, and as many as keep kInFlightPerSm
  // bytes in flight (a stage of small maps' tiles holds few)
  const int64_t streaming_per_sm = std::max<int64_t>(2, ceil_div(kInFlightPerSm, in_flight));
  const auto stream_tiles = [&] {
    return split(B * p.map_groups, p.channel_tiles > 0 ? p.channel_tiles : 1, sm_count,
                 streaming_per_sm);
  };
  if (load == FeatureLoad::kFlat) {
    // A flat tile is all of a channel tile's pixels: blocks stream several channel tiles
    // instead.
    const Split tiles = stream_tiles();
    p.tiles_per_block = tiles.per_split;
    p.channel_blocks = tiles.splits;
    p.pixel_splits = 1;
    p.chunks_per_split = p.pixel_chunks;
  } else {
    // Two blocks per SM: split a channel tile's pixel chunks between blocks where the channel
    // tiles alone are too few (small batches), never leaving a split empty. Where a tile's
    // chunks are too few to fill the ring (small maps) and the tiles are many, blocks stream
    // several channel tiles instead, as the flat variant does (storing v in 16-byte rows: whole
    // chunks of channels).
    const Split pixels = split(B * p.channel_tiles * p.map_groups, p.pixel_chunks, sm_count);
    const bool whole_chunks = C % fusedattn::cuda::chunk_elements(element_size) == 0;
    const bool tiled = load == FeatureLoad::kNchw || load == FeatureLoad::kNhwc;
    const Split tiles = tiled && pixels.splits == 1 && p.pixel_chunks < stages && whole_chunks
                            ? stream_tiles()
                            : Split{p.channel_tiles, 1};
    p.tiles_per_block = tiles.per_split;
    p.channel_blocks = tiles.splits;
    p.stream_tiles = tiles.per_split > 1;
    p.pixel_splits = pixels.splits;
    p.chunks_per_split = pixels.per_split;
  }

  p.own_stats = C > 0 && p.map_tiles == 1 && p.map_groups == 1 && p.pixel_chunks < stages &&
                (load == FeatureLoad::kFlat || p.stream_tiles);
  if (p.own_stats && load != FeatureLoad::kFlat) {
    in_flight = (stages - 1) * kChannelTile * extent * element_size;  // (stages of features only)
  }

  const int64_t e = element_size, F = B * C * N * e, A = B * K * N * e, V = B * K * C * e;
  p.w_scratch_elements = p.own_stats ? 0 : static_cast<size_t>(B * p.w_rows * p.w_cols);
  const int64_t W = static_cast<int64_t>(p.w_scratch_elements) * e;
  // (stats: the statistics' round trips, then the pass over the pixels, a thread's maps
  // kLogitBatch at a time: from the shared copy of the logits where it fits, else from memory)
  p.cache_logits = K * N * e <= kStatsCacheBytes;
  p.vector_logits = load == FeatureLoad::kNhwc
                        ? logits_in_chunks(element_size, 0, K * N, 1, K, N)
                        : logits_in_chunks(element_size, 0, K * N, N, 1, N);
  // (the logits in the features' memory format, as benchmarks and models pass them)
  p.span_logits = p.cache_logits && logits_as_span(element_size, 0, K * N,
                                                   load == FeatureLoad::kNhwc ? 1 : N,
                                                   load == FeatureLoad::kNhwc ? K : 1, K, N);
  const int64_t per_lane = p.vector_logits
                               ? kStatsVectorChunks * fusedattn::cuda::chunk_elements(element_size)
                               : kStatsUnroll;
  const int64_t second_pass_rounds =
      p.cache_logits ? 0 : ceil_div(p.w_cols, kStatsThreads) * ceil_div(K, kLogitBatch);
  // (a span's copy: the sample's logits all in flight, one round trip, then w's stores, a
  // second before the launch ends; else the lanes' loads, at most the sample's logits; w's
  // stores after them keep as many bytes in flight)
  p.stats = {B, 1, kStatsThreads,
             static_cast<size_t>(stats_shared_floats(K)) * sizeof(float) +
                 (p.cache_logits ? static_cast<size_t>(K * N * e) : 0),
             A + W + B * (2 * K + 1) * 4,
             p.span_logits ? K * N * e : std::min(K * N * e, kStatsThreads * per_lane * e),
             ceil_div(K * N, kStatsThreads * per_lane),
             p.span_logits ? 2 : stats_rounds(K, N, per_lane) + second_pass_rounds};
  if (p.own_stats) p.stats = {};
  int64_t partial = 0, serial_rounds = 0;
  if (p.pixel_splits > 1 && C > 0) {
    const size_t sums =
        static_cast<size_t>(B * p.channel_tiles * p.pixel_splits * p.w_rows * kChannelTile);
    partial = static_cast<int64_t>(sums) * 4;
    // (in as much shared memory as leaves the pool's blocks an SM as they are)
    p.finish_in_pool =
        p.map_tiles == 1 &&
        p.pixel_splits <= finish_max_splits(
                              shared_bytes_at_same_occupancy(static_cast<size_t>(pool_shared)),
                              8 * kChannelTile);
    if (p.finish_in_pool) {
      pool_shared = std::max<int64_t>(
          pool_shared, p.pixel_splits * 8 * kChannelTile * 4 + int64_t{kFinishFlagBytes});
    }
    p.arrivals_offset = sums;
    p.partial_floats = sums + (p.finish_in_pool
                                   ? static_cast<size_t>(B * p.channel_tiles * p.map_groups) : 0);
    // (the last block of a tile: its count of arrivals, then its copies of the partial sums)
    serial_rounds = p.finish_in_pool ? 2 : 0;
  }
  // (the partial sums written, and read back by the last blocks where finish_in_pool; with
  // own_stats, every block's logits and the statistics in place of w, and the wait for the
  // logits, their statistics and w before the first wave's blocks read their first stage)
  p.pool = {C > 0 ? B * p.channel_blocks * p.pixel_splits : 0, p.map_groups, kTileThreads,
            static_cast<size_t>(p.own_stats ? own_stats_shared : pool_shared),
            F + (p.own_stats ? A * p.channel_blocks + B * (2 * K + 1) * 4 : W) +
                (partial == 0 ? V : p.finish_in_pool ? 2 * partial + V : partial),
            in_flight, p.tiles_per_block * p.chunks_per_split};
  p.pool.serial_rounds = p.own_stats ? 1 : serial_rounds;
  if (partial > 0 && !p.finish_in_pool) {
    const int64_t parts = 8 * p.map_tiles * kChannelTile / kReduceThreads;
    const int64_t batch = p.pixel_splits < kReduceBatch ? p.pixel_splits : kReduceBatch;
    p.reduce = {B * p.channel_tiles * parts, p.map_groups, kReduceThreads, 0, partial + V,
                kReduceThreads * 4 * batch,
                ceil_div(p.pixel_splits, kReduceBatch), ceil_div(p.pixel_splits, kReduceBatch)};
  }
  return p;
}

BackwardPlan plan_backward(int64_t B, int64_t C, int64_t K, int64_t N, int element_size,
                           FeatureLoad load, uintptr_t grad_pooled_address, int sm_count) {
  BackwardPlan p{};
  p.load = load;
  const MapTiling maps = map_tiling(K);
  p.map_tiles = maps.map_tiles;
  p.map_groups = maps.map_groups;
  // At least 16 rows (mma's k), zero past K, so that every map tile copies whole.
  p.w_rows = maps.w_rows < 16 ? 16 : maps.w_rows;
  const int64_t extent = pixel_extent(load);
  p.pixel_chunks = ceil_div(N, extent);
  p.w_cols = p.pixel_chunks * extent;
  p.channel_tiles = ceil_div(C, kChannelTile);
  // Blocks over (sample, pixel chunk, channel split, map group): split the channels where the
  // pixel chunks alone give too few blocks; each split's share of gw goes to its own slot of
  // the scratch, summed in a fixed order by "gather".
  const Split channels = split(B * p.pixel_chunks * p.map_groups,
                               p.channel_tiles > 0 ? p.channel_tiles : 1, sm_count);
  p.channel_splits = channels.splits;
  p.tiles_per_split = channels.per_split;
  p.held_maps = K <= kLogitBatch;
  p.pixel_blocks = ceil_div(N, (p.held_maps ? kEpiloguePixels : 1) * kEpilogueThreads);

  p.gv_direct = grad_pooled_address % 16 == 0 &&
                C % fusedattn::cuda::chunk_elements(element_size) == 0;
  p.gv_rows = p.gv_direct ? K : p.w_rows;
  p.gv_cols = p.gv_direct ? C : p.channel_tiles * kChannelTile;
  p.gv_scratch_elements = p.gv_direct ? 0 : static_cast<size_t>(B * p.gv_rows * p.gv_cols);
  p.w_scratch_elements = p.map_groups > 1 ? static_cast<size_t>(B * p.w_rows * p.w_cols) : 0;
  p.gw_floats = static_cast<size_t>(B * p.channel_splits * p.w_rows * p.w_cols);
  // "epilogue" where a sample's pixels fit one block (a thread a pixel, whole warps, up to
  // kEpilogueMaxThreads: at 47-48 registers two such blocks share an SM, and its 1 + 3 batches
  // round trips (maps walked in batches) beat gather's and logits' 2 + 2 batches + 2 batches
  // of 16 and a second launch) and its shared memory (the warps' sums, the per-map sums, 4 K
  // floats, and where held s and lse) needs no opt-in past the default, which leaves any K to
  // gather and logits
  const bool held = p.held_maps;
  const int epilogue_threads = static_cast<int>(ceil_div(N > 0 ? N : 1, 32) * 32);
  const size_t epilogue_shared =
      (2 * kGatherMaps * (epilogue_threads / 32) + 4 * static_cast<size_t>(K) +
       (held ? 2 * kLogitBatch : 0)) * sizeof(float);
  const bool one_tile = N <= kEpilogueMaxThreads &&
                        epilogue_shared <= fusedattn::cuda::kDefaultSharedMemoryPerBlock;
  p.sums_floats = one_tile ? 0 : static_cast<size_t>(B * p.pixel_blocks * 2 * K);
  const int64_t e = element_size, F = B * C * N * e, A = B * K * N * e, V = B * K * C * e;
  // (Gv: the bytes of gv as "features" reads it; the padded copy also costs pad_gv V + Gv;
  // "features" reads the logits and s: from memory once, a channel split's other blocks from
  // L2)
  const int64_t Gv = B * p.gv_rows * p.gv_cols * e;
  const int64_t Wmaps = static_cast<int64_t>(p.w_scratch_elements) * e;  // (several groups)
  // (gw's bytes: "features" writes its map groups' rows of each split, "gather" reads K of them;
  // the rows past those, padding to mma's k, are never touched)
  const int64_t Gw = B * p.channel_splits * maps.w_rows * p.w_cols * 4;
  const int64_t GwRead = B * p.channel_splits * K * p.w_cols * 4, Sums = p.sums_floats * 4;
  // (pad_gv: a block per kPadGvRows rows and kPadGvColumns columns, kPadGvUnroll elements a
  // thread in flight)
  if (!p.gv_direct) {
    p.pad_gv_column_windows = ceil_div(p.gv_cols, kPadGvColumns);
    const int64_t window = p.gv_cols < kPadGvColumns ? p.gv_cols : kPadGvColumns;
    p.pad_gv = {B * (p.gv_rows / kPadGvRows) * p.pad_gv_column_windows, 1, kPadGvThreads, 0,
                V + Gv, kPadGvThreads * kPadGvUnroll * e,
                ceil_div(kPadGvRows * window, kPadGvThreads),
                ceil_div(kPadGvRows * window, kPadGvThreads * kPadGvUnroll)};
  }
  int64_t features_shared = 0, grad_features_shared = 0, in_flight = 0, map_tile_bytes = 0;
  with_tiles(element_size, p.map_tiles, load, [&](auto tiles_of) {
    using Tiles = decltype(tiles_of);
    features_shared = Tiles::kFeaturesSharedBytes;
    grad_features_shared = Tiles::kGradFeaturesSharedBytes;
    in_flight = (Tiles::kStages - 1) * Tiles::features_stage_bytes(N);
    map_tile_bytes = (Tiles::kWElements + Tiles::kGvElements) * e;
  });
  const bool split_gf = p.map_groups > 1 && C > 0;
  p.features = {B * p.pixel_chunks * p.channel_splits, p.map_groups, kTileThreads,
                static_cast<size_t>(features_shared),
                F + A + Gv + Gw + (split_gf ? Wmaps : F), in_flight, p.tiles_per_split};
  if (split_gf) {
    p.grad_features = {B * p.pixel_chunks * p.channel_tiles, 1, kTileThreads,
                       static_cast<size_t>(grad_features_shared), Wmaps + Gv + F,
                       map_tile_bytes, p.map_groups, p.map_groups};
  }
  // (gather and logits: where K <= kLogitBatch, a thread's kEpiloguePixels pixels, whose maps
  // it holds (hold_maps: the logits, s, lse and gw, every split's for gather, the splits'
  // totals for logits; a split's loads in flight together), then gather stores its tile's
  // sums, and logits reads every tile's sums (while its maps are in flight) and writes
  // grad_logits: a round trip each after the maps. Else a pixel a thread, its maps
  // kLogitBatch (gather) or kLogitsMapBatch (logits) at a time after the pixel's winner (as
  // many round trips); where the channels were split, gather first adds the splits' gw into
  // split 0's slot (add_splits_in_place: a split's loads of a batch of maps in flight
  // together, a round trip a split and batch), there for logits too. "epilogue", a pixel a
  // thread, where K <= kLogitBatch holds its maps likewise, four splits' loads in flight
  // together, and reads none again; else walks them kLogitBatch at a time in every pass,
  // after adding the splits in place where there are several.)
  const int64_t batches = ceil_div(K, kLogitBatch);
  const int64_t batch_maps = K < kLogitBatch ? K : kLogitBatch;  // a thread's loads of a batch
  const int64_t splits_in_flight = p.channel_splits < 4 ? p.channel_splits : 4;
  const int64_t tile_pixels = held ? kEpiloguePixels : 1;
  const int64_t hold_rounds = ceil_div(p.channel_splits, 4);
  // (not held: the splits' sum first, where there are several)
  const int64_t add_splits_rounds = p.channel_splits > 1 ? batches * p.channel_splits : 0;
  const int64_t Totals = p.channel_splits > 1 ? B * K * N * 4 : 0;
  const size_t statistics_bytes = 2 * kLogitBatch * sizeof(float);
  p.gather = {B * p.pixel_blocks, 1, kEpilogueThreads,
              2 * kGatherMaps * (kEpilogueThreads / 32) * sizeof(float) + statistics_bytes,
              // (not held: the totals read back by its maps pass too)
              A + GwRead + (held ? 1 : 2) * Totals + Sums,
              kEpilogueThreads * tile_pixels * batch_maps * (4 + e), K,
              held ? p.channel_splits + 1 : add_splits_rounds + 1 + 2 * batches};
  const int64_t logits_batch_maps = held ? batch_maps : K < kLogitsMapBatch ? K : kLogitsMapBatch;
  p.logits = {B * p.pixel_blocks, 1, kEpilogueThreads,
              2 * static_cast<size_t>(K) * sizeof(float) + statistics_bytes,
              2 * A + B * K * N * 4 + Sums,
              kEpilogueThreads * tile_pixels * logits_batch_maps * (4 + e), K,
              held ? 2 : 1 + 2 * ceil_div(K, kLogitsMapBatch)};
  if (one_tile) {
    // (held: the pixel's maps once, then the importance gradients' loads; else the winner's
    // round trips once, then gather's and logits' passes over the maps, gw read again by the
    // latter; where the channels were split, their totals stored first and read by both)
    p.epilogue = {B, 1, epilogue_threads, epilogue_shared,
                  held ? 2 * A + GwRead : 3 * A + GwRead + B * K * N * 4 + 2 * Totals,
                  epilogue_threads * batch_maps * (4 * (held ? splits_in_flight : 1) + e), K,
                  held ? hold_rounds + 1 : add_splits_rounds + 1 + 3 * batches};
    p.gather = {};
    p.logits = {};
  }
  return p;
}

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
