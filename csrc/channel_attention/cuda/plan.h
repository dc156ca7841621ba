// How the channel_attention CUDA ops cut a call up: batch chunks, pixel splits, which variant of
// each kernel runs, and every launch's grid, block and dynamic shared memory. Torch-free and
// CUDA-free host code, so that the op's host code (ops_cuda.cpp, through kernels.h), the
// sanitizer driver and the static SASS report (python -m fusedattn sass-report, which prints it
// per shape through plan_dump.cc, built by the host compiler alone) all use exactly the geometry
// real launches get.
//
// A call runs on batch chunks whose slab stays in L2 between the passes over it:
//   forward  per chunk: squeeze (read x) -> MLP -> excite (read x again, write y)
//   backward per chunk: squeeze of grad_y * x -> MLP backward -> excite (read grad_y, write
//            grad_x); then the parameters' gradients over the whole batch.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <vector>

#include "../../common/cuda/launch_plan.h"
#include "../params.h"

namespace fusedattn {
namespace channel_attention {
namespace cuda {

constexpr int kThreads = 256;  // every kernel's block
constexpr int kWarps = kThreads / 32;
// The MLP kernels run kSamplesPerBlock samples per block, so each weight read serves several.
constexpr int kSamplesPerBlock = 4;
// The weight-gradient kernel's loops over the batch: unrolled so, each round's loads in flight
// together.
constexpr int kWeightGradUnroll = 16;
// The squeeze's pixel rows: each lane loads kRowVectors 16-byte vectors (of each tensor) per step,
// a row taking row_lanes lanes (a power of 2, kMinRowLanes..32).
constexpr int kRowVectors = 2;
constexpr int kMinRowLanes = 4;
// The excite's vector variants: each thread loads kExciteVectors 16-byte vectors per step.
constexpr int kExciteVectors = 2;

// The squeeze's variants (its kernel's template argument kVariant).
enum SqueezeVariant : int {
  kSqueezeChannels = 0,         // a thread per channel, any strides
  kSqueezeChannelVectors = 1,   // a thread per 16-byte vector of channels (channels_last, aligned)
  kSqueezePixelRows = 2,        // row_lanes lanes per pixel row; a's and b's rows start at the same
                                // offset within 16 bytes: only 16-byte vectors in the main loop
  kSqueezePixelRowsMisaligned = 3,  // a warp per pixel row whose a and b rows differ in alignment
};
// The excite's variants (its kernel's template argument kVariant).
enum ExciteVariant : int {
  kExciteStrided = 0,             // an element at a time, any strides
  kExciteNchwVectors = 1,         // dense NCHW, 16-byte aligned, N >= a vector's elements
  kExciteChannelsLastVectors = 2, // dense channels_last (or N = 1), 16-byte aligned, whole
                                  // vectors of channels per pixel
};
// One launch: grid (grid_x 0: skipped), block, dynamic shared memory, and the model's numbers.
using LaunchGeometry = ::fusedattn::cuda::LaunchSpec;

// How a call is cut up, from its sizes and the device alone.
struct Plan {
  int64_t chunk;             // samples per chunk: their slab(s) fit in half the L2
  int64_t splits;            // pixel splits of the squeeze (a deterministic second stage sums them)
  int64_t pixels_per_split;  // a multiple of 8: split boundaries keep 16-byte alignment
  bool pixel_rows;           // the squeeze reads rows of pixels (unit pixel stride), else of channels
  bool vector_units;         // channel rows: 16-byte vectors of channels (else one channel each)
  bool aligned_rows;         // pixel rows: a's and b's rows start at the same offset in 16 bytes
  int64_t row_lanes;         // pixel rows (aligned): lanes per row, kThreads / row_lanes rows a block
  int sm_count;              // the device's
  bool slab_in_l2;           // a chunk's slab(s) fit in half the L2 (else chunks of 1 that do not)
};

// What a plan needs of the device (queried once per device and cached).
struct DeviceLimits {
  int sm_count;
  size_t l2_cache_bytes;
};

// The squeeze's reading order for a (B, C, N) tensor `a` of strides sa at address_a (and, in
// the backward, b: the squeeze of a * b).
struct SqueezeLayout {
  bool pixel_rows, vector_units, aligned_rows;
};
SqueezeLayout squeeze_layout(const Strides& sa, uintptr_t address_a, const Strides* sb,
                             uintptr_t address_b, int64_t C, int64_t N, int64_t element_bytes);

// slab_tensors: how many (C x N) tensors a pass keeps in L2 per sample (1 forward, 2 backward).
Plan make_plan(int64_t B, int64_t C, int64_t N, int64_t element_bytes, int slab_tensors,
               const SqueezeLayout& layout, const DeviceLimits& device);
SqueezeVariant squeeze_variant(const Plan& plan);

// The excite's variant for in (strides si) -> out (so) at these addresses.
ExciteVariant excite_variant(const Strides& si, uintptr_t address_in, const Strides& so,
                             uintptr_t address_out, int64_t samples, int64_t C, int64_t N,
                             int64_t element_bytes);

// Float scratch of a call, for one chunk: the squeeze's partial sums, then the per-(sample,
// channel) scale and shift of the excite, each starting on a 16-byte boundary and followed by
// 4 floats of padding (the excite reads them as float4s, the last one past the end).
struct WorkspaceLayout {
  int64_t partials, scale, shift, floats;  // offsets in floats; the total
};
WorkspaceLayout workspace_layout(const Plan& plan, int64_t C);
int64_t workspace_floats(const Plan& plan, int64_t C);

LaunchGeometry squeeze_geometry(const Plan& plan, int64_t chunk_samples, int64_t C,
                                int64_t element_bytes);
LaunchGeometry excite_geometry(int64_t elements, int64_t element_bytes, int sm_count,
                               ExciteVariant variant);
LaunchGeometry mlp_geometry(int64_t chunk_samples, int64_t C, int64_t R);
LaunchGeometry weight_grad_geometry(int64_t C, int64_t R);

// Every launch of a call's forward or backward, in order, each with the model's numbers (the
// static report prints these; launch_forward / launch_backward make exactly these launches).
// Where the plan's slab_in_l2 holds, the excite's reads are L2 hits, not DRAM bytes.
struct PlannedLaunch {
  const char* kernel;  // the kernel function's name
  LaunchGeometry geometry;
};
std::vector<PlannedLaunch> planned_launches(const Plan& plan, bool backward, int64_t B, int64_t C,
                                            int64_t N, int64_t R, int64_t element_bytes,
                                            int64_t weight_bytes, ExciteVariant excite);

}  // namespace cuda
}  // namespace channel_attention
}  // namespace fusedattn
