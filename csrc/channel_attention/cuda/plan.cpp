#include "plan.h"

namespace fusedattn {
namespace channel_attention {
namespace cuda {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Whether the channels of every (sample, pixel) row can be read as 16-byte vectors: unit channel
// stride, whole vectors per row, and rows (and samples) starting on 16-byte boundaries.
bool channel_vectors(const Strides& s, uintptr_t address, int64_t C, int64_t elem) {
  const int64_t per = 16 / elem;
  return s.c == 1 && C % per == 0 && address % 16 == 0 && (s.n * elem) % 16 == 0 &&
         (s.b * elem) % 16 == 0;
}

bool same_offset(int64_t bytes) { return bytes % 16 == 0; }  // (% keeps the sign: 0 either way)

// Lanes per pixel row for rows of `pixels`: enough for kRowVectors vectors each, kMinRowLanes..32.
int64_t row_lanes_for(int64_t pixels, int64_t elem) {
  const int64_t vectors = ceil_div(pixels * elem, 16);
  int64_t lanes = kMinRowLanes;
  while (lanes < 32 && lanes * kRowVectors < vectors) lanes *= 2;
  return lanes;
}

bool dense_nchw(const Strides& s, int64_t C, int64_t N) {
  return (C == 1 || s.c == N) && (N == 1 || s.n == 1);
}
bool dense_channels_last(const Strides& s, int64_t C, int64_t N) {
  return (C == 1 || s.c == 1) && (N == 1 || s.n == C);
}

}  // namespace

ExciteVariant excite_variant(const Strides& si, uintptr_t address_in, const Strides& so,
                             uintptr_t address_out, int64_t samples, int64_t C, int64_t N,
                             int64_t elem) {
  const int64_t per = 16 / elem;
  const bool same = si.b == so.b && si.c == so.c && si.n == so.n;
  if (!same || (samples > 1 && si.b != C * N) || address_in % 16 != 0 || address_out % 16 != 0) {
    return kExciteStrided;
  }
  if (dense_channels_last(si, C, N) && C % per == 0) return kExciteChannelsLastVectors;
  // (a vector then spans at most two rows)
  if (dense_nchw(si, C, N) && N >= per && (samples * C * N) % per == 0) return kExciteNchwVectors;
  return kExciteStrided;
}

SqueezeVariant squeeze_variant(const Plan& plan) {
  if (plan.pixel_rows) return plan.aligned_rows ? kSqueezePixelRows : kSqueezePixelRowsMisaligned;
  return plan.vector_units ? kSqueezeChannelVectors : kSqueezeChannels;
}

SqueezeLayout squeeze_layout(const Strides& sa, uintptr_t address_a, const Strides* sb,
                             uintptr_t address_b, int64_t C, int64_t N, int64_t elem) {
  bool pixel_rows = sa.n == 1 || N == 1;
  bool vectors = channel_vectors(sa, address_a, C, elem);
  bool aligned = true;  // every row of b starts at the offset (within 16 bytes) of a's
  if (sb != nullptr) {
    pixel_rows = pixel_rows && (sb->n == 1 || N == 1);
    vectors = vectors && channel_vectors(*sb, address_b, C, elem);
    aligned = same_offset(static_cast<int64_t>(address_a - address_b)) &&
              same_offset((sa.c - sb->c) * elem) && same_offset((sa.b - sb->b) * elem);
  }
  if (N == 1) pixel_rows = sa.c != 1;  // one pixel: read along the channels when they are dense
  return {pixel_rows, vectors, aligned};
}

Plan make_plan(int64_t B, int64_t C, int64_t N, int64_t elem, int slab_tensors,
               const SqueezeLayout& layout, const DeviceLimits& device) {
  Plan plan{};
  plan.sm_count = device.sm_count;
  plan.pixel_rows = layout.pixel_rows;
  plan.vector_units = !layout.pixel_rows && layout.vector_units;
  plan.aligned_rows = layout.pixel_rows && layout.aligned_rows;
  plan.row_lanes = plan.aligned_rows ? row_lanes_for(N, elem) : 32;
  const int64_t slab = slab_tensors * C * N * elem;
  const int64_t fit = static_cast<int64_t>(device.l2_cache_bytes / 2) / (slab > 0 ? slab : 1);
  plan.slab_in_l2 = fit >= 1;
  plan.chunk = fit < 1 ? 1 : (fit < B ? fit : (B > 0 ? B : 1));
  // Splits of the pixels until the squeeze has ~2 blocks per SM, none under kMinPixels.
  constexpr int64_t kMinPixels = 128;
  const int64_t blocks = squeeze_geometry(plan, plan.chunk, C, elem).grid_x;
  const int64_t want = (2 * static_cast<int64_t>(device.sm_count) + blocks - 1) / blocks;
  const int64_t most = (N + kMinPixels - 1) / kMinPixels;
  int64_t splits = want < most ? want : most;
  splits = splits > 0 ? splits : 1;
  plan.pixels_per_split = ((N + splits - 1) / splits + 7) / 8 * 8;
  plan.splits = (N + plan.pixels_per_split - 1) / plan.pixels_per_split;
  if (plan.splits < 1) plan.splits = 1;
  // (fewer lanes for the split's rows: more rows per block, the grid only grows)
  if (plan.aligned_rows) plan.row_lanes = row_lanes_for(plan.pixels_per_split, elem);
  return plan;
}

WorkspaceLayout workspace_layout(const Plan& plan, int64_t C) {
  const auto whole = [](int64_t n) { return (n + 3) / 4 * 4; };
  WorkspaceLayout w;
  w.partials = 0;
  w.scale = whole(plan.chunk * plan.splits * C);
  w.shift = w.scale + whole(plan.chunk * C) + 4;
  w.floats = w.shift + whole(plan.chunk * C) + 4;
  return w;
}

int64_t workspace_floats(const Plan& plan, int64_t C) { return workspace_layout(plan, C).floats; }

LaunchGeometry squeeze_geometry(const Plan& plan, int64_t samples, int64_t C,
                                int64_t element_bytes) {
  const int64_t unit = plan.vector_units ? 16 / element_bytes : 1;
  // Aligned pixel rows: blocks of kThreads, or of fewer threads (down to 64: fewer rows a block)
  // where the grid, its splits known, would have fewer blocks than SMs (small calls: B = 1).
  int64_t threads = kThreads;
  const auto row_blocks = [&](int64_t t) {
    const int64_t rows = plan.aligned_rows ? t / plan.row_lanes : kWarps;
    return (C + rows - 1) / rows;
  };
  while (plan.aligned_rows && plan.splits > 0 && threads > 64 &&
         samples * row_blocks(threads) * plan.splits < plan.sm_count) {
    threads /= 2;
  }
  int64_t blocks = row_blocks(threads);
  size_t shared = 0;
  if (!plan.pixel_rows) {
    const int64_t units = (C + unit - 1) / unit;
    int64_t upb = 1;
    while (upb < units && upb < kThreads) upb *= 2;
    blocks = (units + upb - 1) / upb;
    shared = sizeof(float) * kThreads * static_cast<size_t>(unit);
  }
  LaunchGeometry g;
  g.grid_x = samples * blocks, g.grid_y = plan.splits, g.threads = static_cast<int>(threads);
  g.shared_bytes = shared;
  return g;
}

LaunchGeometry excite_geometry(int64_t elements, int64_t element_bytes, int sm_count,
                               ExciteVariant variant) {
  // Strided: an element per thread per step. Vectors: kExciteVectors 16-byte vectors per thread
  // per step, in blocks of kThreads, or of fewer threads (down to 64) where that leaves fewer
  // blocks than SMs (small calls: B = 1). At most 16 blocks of kThreads per SM resident or
  // queued: the grid-stride loop covers the rest.
  const int64_t sms = sm_count > 0 ? sm_count : 1;
  const int64_t vectors = (elements * element_bytes + 15) / 16;
  int64_t threads = kThreads, per_thread = 1;
  if (variant != kExciteStrided) {
    per_thread = kExciteVectors;
    while (threads > 64 && ceil_div(vectors, threads * per_thread) < sms) threads /= 2;
  }
  int64_t blocks = ceil_div(vectors, threads * per_thread);
  const int64_t cap = 16 * sms * (kThreads / threads);
  blocks = blocks < cap ? blocks : cap;
  LaunchGeometry g;
  g.grid_x = blocks > 0 ? blocks : 1, g.threads = static_cast<int>(threads);
  return g;
}

LaunchGeometry mlp_geometry(int64_t samples, int64_t C, int64_t R) {
  const int64_t blocks = (samples + kSamplesPerBlock - 1) / kSamplesPerBlock;
  LaunchGeometry g;
  g.grid_x = blocks > 0 ? blocks : 1, g.threads = kThreads;
  g.shared_bytes = sizeof(float) * kSamplesPerBlock * static_cast<size_t>(C + R);
  return g;
}

LaunchGeometry weight_grad_geometry(int64_t C, int64_t R) {
  const int64_t outputs = 2 * C * R + C + R;
  LaunchGeometry g;
  g.grid_x = (outputs + kThreads - 1) / kThreads, g.threads = kThreads;
  return g;
}

std::vector<PlannedLaunch> planned_launches(const Plan& plan, bool backward, int64_t B, int64_t C,
                                            int64_t N, int64_t R, int64_t e, int64_t w,
                                            ExciteVariant excite) {
  std::vector<PlannedLaunch> out;
  const int64_t tensors = backward ? 2 : 1;   // what the squeeze reads: x, or grad_y and x
  const int64_t params = (2 * C * R + C + R) * w;
  for (int64_t b0 = 0; b0 < B; b0 += plan.chunk) {
    const int64_t s = B - b0 < plan.chunk ? B - b0 : plan.chunk;
    const int64_t X = s * C * N * e, partials = s * plan.splits * C * 4;
    // squeeze: the chunk's x (and grad_y) from DRAM, its partial sums out. In flight: a 16-byte
    // vector (pixel rows and channel vectors) or an element (one channel a thread) per tensor
    // per thread; steps: the main loop's iterations per thread.
    LaunchGeometry q = squeeze_geometry(plan, s, C, e);
    q.bytes = tensors * X + partials;
    if (plan.pixel_rows && plan.aligned_rows) {
      // (row_lanes lanes per row of the split, kRowVectors vectors each per step: lanes past the
      // row's vectors load nothing)
      const int64_t vectors = ceil_div(plan.pixels_per_split * e, 16);
      const int64_t slots = plan.row_lanes * kRowVectors;
      q.in_flight_bytes =
          q.threads / plan.row_lanes * (vectors < slots ? vectors : slots) * 16 * tensors;
      q.steps = ceil_div(vectors, slots);
    } else if (plan.pixel_rows) {
      // (a warp per row of the split: lanes past its vectors load nothing)
      const int64_t vectors = ceil_div(plan.pixels_per_split * e, 16);
      q.in_flight_bytes = kWarps * (vectors < 32 ? vectors : 32) * 16 * tensors;
      q.steps = ceil_div(vectors, 32);
    } else {
      const int64_t unit = plan.vector_units ? 16 / e : 1;
      const int64_t units = ceil_div(C, unit);
      int64_t upb = 1;
      while (upb < units && upb < kThreads) upb *= 2;
      q.in_flight_bytes = kThreads * unit * e * tensors;
      q.steps = ceil_div(plan.pixels_per_split, kThreads / upb);
    }
    out.push_back({"channel_attention_squeeze_kernel", q});
    // mlp: the partial sums, the parameters, the saved statistics; small: rounds = the
    // iterations of its three outer loops (each waits for its loads).
    LaunchGeometry m = mlp_geometry(s, C, R);
    m.bytes = partials + params + (backward ? s * (C + R) * 4 + s * (3 * C + 2 * R) * 4
                                            : s * (3 * C + R) * 4);
    m.in_flight_bytes = kThreads * 4, m.steps = 1;
    m.rounds = ceil_div(kSamplesPerBlock * C, kThreads) + ceil_div(R, kWarps) +
               ceil_div(C, kThreads);
    out.push_back({backward ? "channel_attention_mlp_bwd_kernel" : "channel_attention_mlp_fwd_kernel",
                   m});
    // excite: writes y (grad_x); reads x (grad_y) again, from L2 where the slab stays there,
    // and the scale (and shift).
    LaunchGeometry x = excite_geometry(s * C * N, e, plan.sm_count, excite);
    x.bytes = X + (plan.slab_in_l2 ? 0 : X) + s * C * 4 * (backward ? 2 : 1);
    if (excite == kExciteStrided) {
      x.in_flight_bytes = x.threads * e;
      x.steps = ceil_div(s * C * N, x.grid_x * x.threads);
    } else {
      x.in_flight_bytes = x.threads * kExciteVectors * 16;
      x.steps = ceil_div(ceil_div(s * C * N * e, 16), x.grid_x * x.threads * kExciteVectors);
    }
    out.push_back({"channel_attention_excite_kernel", x});
  }
  if (backward) {
    // The parameters' gradients: each summed over the batch in order by one thread (the loop
    // unrolled kWeightGradUnroll times: B / kWeightGradUnroll rounds of loads).
    LaunchGeometry g = weight_grad_geometry(C, R);
    g.bytes = B * (2 * C + 2 * R) * 4 + (2 * C * R + C + R) * 4;
    g.in_flight_bytes = kThreads * 2 * 4 * kWeightGradUnroll;
    g.steps = ceil_div(B, kWeightGradUnroll);
    g.rounds = ceil_div(B, kWeightGradUnroll);
    out.push_back({"channel_attention_weight_grad_kernel", g});
  }
  return out;
}

}  // namespace cuda
}  // namespace channel_attention
}  // namespace fusedattn
