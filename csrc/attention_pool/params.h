// What an attention_pool kernel needs of one call, CPU or CUDA: pointers, strides and sizes, no
// torch types (the kernels' translation units include none). Filled by the host code's
// forward_params / backward_params (host.h). Statistics and their gradients are in the
// accumulate type: float, or double for float64 inputs.
#pragma once

#include <stdint.h>

namespace fusedattn {
namespace attention_pool {

struct ForwardParams {
  const void* features;  // (B, C, N), strides sfb, sfc, sfn, the input dtype
  const void* logits;    // (B, K, N), strides sab, sak, san, the input dtype
  void* pooled;          // (B, K, C) contiguous, the input dtype
  void* importance;      // (B, K) contiguous
  void* logsumexp;       // (B, K) contiguous, or nullptr when no backward needs it
  void* diversity;       // (B,), or nullptr when not computed
  int64_t sfb, sfc, sfn, sab, sak, san;
  int64_t B, C, K, N;
  bool mean_pool;
};

struct BackwardParams {
  const void* grad_pooled;      // (B, K, C) contiguous, the input dtype
  const void* grad_importance;  // (B, K) contiguous
  const void* grad_diversity;   // (B,), or nullptr when the loss did not use it
  const void* features;         // strides sfb, sfc, sfn
  const void* logits;           // strides sab, sak, san
  const void* importance;       // (B, K) contiguous
  const void* logsumexp;        // (B, K) contiguous
  void* grad_features;          // strides gfb, gfc, gfn
  void* grad_logits;            // strides gab, gak, gan
  int64_t sfb, sfc, sfn, sab, sak, san, gfb, gfc, gfn, gab, gak, gan;
  int64_t B, C, K, N;
  bool mean_pool;
};

}  // namespace attention_pool
}  // namespace fusedattn
