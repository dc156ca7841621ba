// The channel_attention CPU kernels' interface: plain structs of pointers, strides and sizes, no
// torch types. The kernels (kernels_impl.h) are compiled once per instruction set
// (kernels_<isa>.cpp) and the host code (ops_cpu.cpp) picks one at run time.
#pragma once

#include "../../common/cpu/isa.h"
#include "../../common/cpu/storage.h"
#include "../params.h"

#include <stddef.h>
#include <stdint.h>

namespace fusedattn {
namespace channel_attention {
namespace cpu {

using ::fusedattn::cpu::BFloat16;
using ::fusedattn::cpu::Half;

// Per-thread scratch (bytes) for one sample at a time; acc_size is sizeof(acc_t). The kernels
// carve it up in the same order: four C-long and two R-long vectors, two rows of max(C, N).
inline size_t workspace_bytes(int64_t C, int64_t N, int64_t R, size_t acc_size) {
  const int64_t row = N > C ? N : C;
  return acc_size * static_cast<size_t>(4 * C + 2 * R + 2 * row);
}

// forward / backward: samples [b_begin, b_end). weight_grads: rows [row_begin, row_end) of the
// parameters' gradients, rows < R of fc1 (and fc1_bias), the others of fc2 (and fc2_bias),
// summed over the batch from the backward's per-sample scratch.
#define FUSEDATTN_DECLARE_CHANNEL_ATTENTION_CPU_KERNELS(isa)                                  \
  namespace isa {                                                                            \
  template <typename scalar_t>                                                               \
  void forward(const ForwardParams& p, int64_t b_begin, int64_t b_end, void* workspace);     \
  template <typename scalar_t>                                                               \
  void backward(const BackwardParams& p, int64_t b_begin, int64_t b_end, void* workspace);   \
  template <typename scalar_t>                                                               \
  void weight_grads(const BackwardParams& p, int64_t row_begin, int64_t row_end, void*);     \
  }
FUSEDATTN_FOR_EACH_CPU_ISA(FUSEDATTN_DECLARE_CHANNEL_ATTENTION_CPU_KERNELS)
#undef FUSEDATTN_DECLARE_CHANNEL_ATTENTION_CPU_KERNELS

}  // namespace cpu
}  // namespace channel_attention
}  // namespace fusedattn
