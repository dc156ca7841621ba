// Deterministic warp and block reductions: every lane (thread) ends with the same result,
// computed in the same order every run.
#pragma once

#include "../math.h"
#include "runtime.cuh"

namespace fusedattn {
namespace cuda {

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__device__ __forceinline__ math::SoftmaxState<float> warp_softmax_merge(
    math::SoftmaxState<float> s) {
  for (int o = 16; o > 0; o >>= 1) {
    math::SoftmaxState<float> other{__shfl_xor_sync(0xffffffffu, s.max, o),
                                    __shfl_xor_sync(0xffffffffu, s.sum, o)};
    s = math::softmax_merge(s, other);
  }
  return s;
}

// Sum over a block of kThreads threads; `scratch` holds kThreads / 32 floats of shared memory.
template <int kThreads>
__device__ __forceinline__ float block_sum(float x, float* scratch) {
  constexpr int kWarps = kThreads / 32;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  x = warp_sum(x);
  __syncthreads();
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < kWarps; ++w) total += scratch[w];
  return total;
}

}  // namespace cuda
}  // namespace fusedattn
