// Interface between the channel_attention CUDA ops' host code (ops_cuda.cpp) and the kernels
// (streaming.cu, mlp.cu, which include nothing of torch so nvcc stays fast). Every kernel's launch
// geometry (grid, block, dynamic shared memory) is computed by a torch-free function here, which
// a static report can call without a GPU.
//
// A call runs on batch chunks whose slab stays in L2 between the passes over it:
//   forward  per chunk: squeeze (read x) -> MLP -> excite (read x again, write y)
//   backward per chunk: squeeze of grad_y * x -> MLP backward -> excite (read grad_y, write
//            grad_x); then the parameters' gradients over the whole batch.
#pragma once

#include "../../common/cuda/dtype.h"
#include "../params.h"

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

namespace fusedattn {
namespace channel_attention {
namespace cuda {

using ::fusedattn::cuda::DType;

constexpr int kThreads = 256;  // every kernel's block
constexpr int kWarps = kThreads / 32;
// The MLP kernels run kSamplesPerBlock samples per block, so each weight read serves several.
constexpr int kSamplesPerBlock = 4;

struct LaunchGeometry {
  dim3 grid, block;
  size_t shared_bytes;
};

// How a call is cut up, from its sizes and the device alone.
struct Plan {
  int64_t chunk;             // samples per chunk: their slab(s) fit in half the L2
  int64_t splits;            // pixel splits of the squeeze (a deterministic second stage sums them)
  int64_t pixels_per_split;  // a multiple of 8: split boundaries keep 16-byte alignment
  bool pixel_rows;           // the squeeze reads rows of pixels (unit pixel stride), else of channels
  bool vector_units;         // channel rows: 16-byte vectors of channels (else one channel each)
  int sm_count;              // the device's
};

// What a plan needs of the device (queried once per device and cached).
struct DeviceLimits {
  int sm_count;
  size_t l2_cache_bytes;
};
DeviceLimits device_limits(int device);

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

// The whole forward and backward (the host code allocates the workspace and the params'
// outputs); weight_dtype is the parameters' (x's or float32).
void launch_forward(const ForwardParams& p, DType dtype, DType weight_dtype, const Plan& plan,
                    float* workspace, cudaStream_t stream);
void launch_backward(const BackwardParams& p, DType dtype, DType weight_dtype, const Plan& plan,
                     float* workspace, cudaStream_t stream);

// The two streaming kernels (streaming.cu), on one chunk.
// partials[(b * splits + split) * C + c] = sum over the split's pixels of a (* b when given).
void launch_squeeze(const void* a, const Strides& sa, const void* b, const Strides& sb,
                    int64_t samples, int64_t C, int64_t N, const Plan& plan, float* partials,
                    DType dtype, cudaStream_t stream);
// out[b, c, n] = in[b, c, n] * scale[b, c] (+ shift[b, c] when given).
void launch_excite(const void* in, const Strides& si, void* out, const Strides& so,
                   int64_t samples, int64_t C, int64_t N, const float* scale, const float* shift,
                   DType dtype, int sm_count, cudaStream_t stream);

}  // namespace cuda
}  // namespace channel_attention
}  // namespace fusedattn
