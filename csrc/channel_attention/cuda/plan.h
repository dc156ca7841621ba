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
// One launch: grid (grid_x 0: skipped), block, dynamic shared memory, and the model's numbers.
using LaunchGeometry = ::fusedattn::cuda::LaunchSpec;

// How a call is cut up, from its sizes and the device alone.
struct Plan {
  int64_t chunk;             // samples per chunk: their slab(s) fit in half the L2
  int64_t splits;            // pixel splits of the squeeze (a deterministic second stage sums them)
  int64_t pixels_per_split;  // a multiple of 8: split boundaries keep 16-byte alignment
  bool pixel_rows;           // the squeeze reads rows of pixels (unit pixel stride), else of channels
  bool vector_units;         // channel rows: 16-byte vectors of channels (else one channel each)
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
  bool pixel_rows, vector_units;
};
SqueezeLayout squeeze_layout(const Strides& sa, uintptr_t address_a, const Strides* sb,
                             uintptr_t address_b, int64_t C, int64_t N, int64_t element_bytes);

// slab_tensors: how many (C x N) tensors a pass keeps in L2 per sample (1 forward, 2 backward).
Plan make_plan(int64_t B, int64_t C, int64_t N, int64_t element_bytes, int slab_tensors,
               bool pixel_rows, bool vector_units, const DeviceLimits& device);

// Float scratch of a call: the squeeze's partial sums and the per-(sample, channel) scale and
// shift of the excite, for one chunk.
int64_t workspace_floats(const Plan& plan, int64_t C);

LaunchGeometry squeeze_geometry(const Plan& plan, int64_t chunk_samples, int64_t C,
                                int64_t element_bytes);
LaunchGeometry excite_geometry(int64_t elements, int64_t element_bytes, int sm_count);
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
                                            int64_t weight_bytes);

}  // namespace cuda
}  // namespace channel_attention
}  // namespace fusedattn
