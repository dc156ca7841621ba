// The attention_pool CPU kernels' interface: plain structs of pointers, strides and sizes, no
// torch types. The kernels (kernels_impl.h) are compiled once per instruction set
// (kernels_<isa>.cpp, each with its own target flags) and the host code (ops_cpu.cpp) picks one
// at run time.
#pragma once

#include "../../common/cpu/isa.h"
#include "../../common/cpu/storage.h"
#include "../params.h"

#include <stddef.h>
#include <stdint.h>

namespace fusedattn {
namespace attention_pool {
namespace cpu {

using ::fusedattn::cpu::BFloat16;
using ::fusedattn::cpu::Half;

// Per-thread scratch (bytes, 64-byte aligned by the caller) for one sample at a time;
// acc_size is sizeof(acc_t). The kernels carve it up in the same order.
inline size_t forward_workspace_bytes(const ForwardParams& p, size_t acc_size) {
  const int64_t row = p.N > p.C ? p.N : p.C;
  const int64_t scratch = p.N > p.K ? p.N : p.K;
  return acc_size * static_cast<size_t>(2 * p.K * p.N + row + scratch + p.K * p.C + p.K) +
         sizeof(int32_t) * static_cast<size_t>(p.N);
}
inline size_t backward_workspace_bytes(const BackwardParams& p, size_t acc_size) {
  const int64_t row = p.N > p.C ? p.N : p.C;
  return acc_size * static_cast<size_t>(3 * p.K * p.N + p.K * p.C + 2 * row + 4 * p.K) +
         sizeof(int32_t) * static_cast<size_t>(p.N);
}

#define FUSEDATTN_DECLARE_ATTENTION_POOL_CPU_KERNELS(isa)                                    \
  namespace isa {                                                                           \
  template <typename scalar_t>                                                              \
  void forward(const ForwardParams& p, int64_t b_begin, int64_t b_end, void* workspace);    \
  template <typename scalar_t>                                                              \
  void backward(const BackwardParams& p, int64_t b_begin, int64_t b_end, void* workspace);  \
  }
FUSEDATTN_FOR_EACH_CPU_ISA(FUSEDATTN_DECLARE_ATTENTION_POOL_CPU_KERNELS)
#undef FUSEDATTN_DECLARE_ATTENTION_POOL_CPU_KERNELS

}  // namespace cpu
}  // namespace attention_pool
}  // namespace fusedattn
