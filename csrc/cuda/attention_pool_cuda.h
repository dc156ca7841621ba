// Interface between the CUDA ops' host code (attention_pool_cuda.cpp, ATen) and the kernels
// (attention_pool_{fwd,bwd}.cu, which include nothing of ATen so nvcc stays fast): plain
// structs of pointers, strides and sizes.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace fusedattn {
namespace cuda {

enum class DType { Half, BFloat16, Float };

// The kernels keep every map's per-pixel values of a pixel tile in shared memory.
constexpr int64_t kMaxMaps = 64;

struct ForwardParams {
  const void* features;  // (B, C, N), strides sfb, sfc, sfn, dtype
  const void* logits;    // (B, K, N), strides sab, sak, san, dtype
  void* pooled;          // (B, K, C) contiguous, dtype
  float* importance;     // (B, K)
  float* logsumexp;      // (B, K)
  float* diversity;      // (B,), or nullptr
  int64_t sfb, sfc, sfn, sab, sak, san;
  int64_t B, C, K, N;
  float alpha;
  int splits;            // channel splits per sample (grid.y = 1 + splits)
};

struct BackwardParams {
  const void* grad_pooled;      // (B, K, C) contiguous, dtype
  const float* grad_importance;  // (B, K) contiguous
  const float* grad_diversity;   // (B,), or nullptr
  const void* features;
  const void* logits;
  const float* importance;       // (B, K)
  const float* logsumexp;        // (B, K)
  void* grad_features;           // strides gfb, gfc, gfn
  void* grad_logits;             // strides gab, gak, gan
  float* gw_splits;              // (B, splits, K, N) scratch: each split's share of gw
  int64_t sfb, sfc, sfn, sab, sak, san, gfb, gfc, gfn, gab, gak, gan;
  int64_t B, C, K, N;
  float alpha;
  int splits;
};

// How many programs share a sample's channels: enough to give every SM two blocks at small
// batch, 1 at large batch. Both passes use it (the backward sizes gw_splits with it).
int num_splits(int64_t B, int64_t C, int device);

void launch_forward(const ForwardParams& p, DType dtype, cudaStream_t stream);
void launch_backward(const BackwardParams& p, DType dtype, cudaStream_t stream);

}  // namespace cuda
}  // namespace fusedattn
