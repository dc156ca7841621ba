// The toy kernels compiled by nvcc for a GPU, with their templates instantiated: the test checks
// that they compile for sm_80 and sm_90 and that the SASS holds the instructions the PTX
// wrappers stand for.
#include "toy_kernels.cuh"

template __global__ void toys::mma_16x16x16<__half, false, false>(const __half*, const __half*,
                                                                  float*);
template __global__ void toys::mma_16x16x16<__nv_bfloat16, true, true>(const __nv_bfloat16*,
                                                                       const __nv_bfloat16*,
                                                                       float*);
template __global__ void toys::mma_16x8x8<__half, false>(const __half*, const __half*, float*);
template __global__ void toys::mma_16x8x8<__nv_bfloat16, true>(const __nv_bfloat16*,
                                                               const __nv_bfloat16*, float*);

// The host side of runtime.cuh under nvcc: launches (one past 48 KB of shared memory, which
// takes the opt-in path) and the device query.
int launch_toys(const float* x, float* sums, float* out, cudaStream_t stream) {
  fusedattn::cuda::launch(toys::row_sum, 3, 256, 256 * sizeof(float), stream, x, 300, 304, sums);
  fusedattn::cuda::launch(toys::rotate_large_shared_memory, 1, 64, 64 * 1024, stream, out);
  return fusedattn::cuda::device_info(0).sm_count;
}
