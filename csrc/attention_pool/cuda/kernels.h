// Interface between the attention_pool CUDA ops' host code (ops_cuda.cpp) and the kernels
// (forward.cu, backward.cu, which include nothing of torch so nvcc stays fast): the launches of
// one call, as plan.h splits it, with the scratch the plan sized.
#pragma once

#include "../../common/cuda/dtype.h"
#include "../params.h"
#include "plan.h"

#include <cuda_runtime_api.h>

namespace fusedattn {
namespace attention_pool {
namespace cuda {

using ::fusedattn::cuda::DType;

// The forward's scratch: the recalibrated maps (plan.w_scratch_elements of the input dtype) and
// the pixel splits' partial sums, then where the last block of a split tile adds them, their
// arrival counts (plan.partial_floats floats in all, none when unsplit).
struct ForwardScratch {
  void* w;
  float* partial;
};

// The backward's scratch: the padded gv unless gv_direct (plan.gv_scratch_elements), the
// maps where several map groups (plan.w_scratch_elements), each channel split's share of gw
// (plan.gw_floats), and each pixel tile's per-map sums (plan.sums_floats).
struct BackwardScratch {
  void* gv;
  void* w;
  float* gw;
  float* sums;
};

// The device's multiprocessor count (cached per device): what the plans size grids by.
int device_sm_count(int device);

void launch_forward(const ForwardParams& p, const ForwardPlan& plan, DType dtype,
                    const ForwardScratch& scratch, cudaStream_t stream);
void launch_backward(const BackwardParams& p, const BackwardPlan& plan, DType dtype,
                     const BackwardScratch& scratch, cudaStream_t stream);

}  // namespace cuda
}  // namespace attention_pool
}  // namespace fusedattn
