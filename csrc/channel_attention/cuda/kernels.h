// Interface between the channel_attention CUDA ops' host code (ops_cuda.cpp) and the kernels
// (streaming.cu, mlp.cu, which include nothing of torch so nvcc stays fast). The plan of a call
// and every kernel's launch geometry (grid, block, dynamic shared memory) come from plan.h:
// torch-free and CUDA-free, so that the static SASS report builds it with the host compiler.
#pragma once

#include "../../common/cuda/dtype.h"
#include "../params.h"
#include "plan.h"

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

namespace fusedattn {
namespace channel_attention {
namespace cuda {

using ::fusedattn::cuda::DType;

// What a plan needs of the device (plan.h), queried once per device and cached.
DeviceLimits device_limits(int device);

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
