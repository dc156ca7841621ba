// Interface between the attention_pool CUDA ops' host code (ops_cuda.cpp) and the kernels
// (forward.cu, backward.cu, which include nothing of torch so nvcc stays fast).
#pragma once

#include "../../common/cuda/dtype.h"
#include "../params.h"

#include <cuda_runtime_api.h>
#include <stdint.h>

namespace fusedattn {
namespace attention_pool {
namespace cuda {

using ::fusedattn::cuda::DType;

// The kernels keep every map's per-pixel values of a pixel tile in shared memory.
constexpr int64_t kMaxMaps = 64;

// How many programs share a sample's channels: enough to give every SM two blocks at small
// batch, 1 at large batch, at most max_splits, never an empty one. The backward passes a
// max_splits that bounds its gw_splits scratch (B x splits x K x N floats).
int num_splits(int64_t B, int64_t C, int device, int64_t max_splits);

void launch_forward(const ForwardParams& p, DType dtype, cudaStream_t stream);
void launch_backward(const BackwardParams& p, DType dtype, cudaStream_t stream);

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
