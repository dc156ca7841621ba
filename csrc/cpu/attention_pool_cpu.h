// The CPU kernels' interface: plain structs of pointers, strides and sizes, no ATen. The kernels
// (attention_pool_cpu_kernels.h) are compiled once per instruction set (kernels_<isa>.cpp, each
// with its own target flags) and the host code (attention_pool_cpu.cpp) picks one at run time.
#pragma once

#include "../attention_pool_params.h"

#include <stddef.h>
#include <stdint.h>

namespace fusedattn {
namespace cpu {

// 16-bit storage types, as bits: the kernels convert them to float themselves so that no
// library inline code is compiled with per-ISA flags.
struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

// Per-thread scratch (bytes, 64-byte aligned by the caller) for one sample at a time;
// acc_size is sizeof(acc_t). The kernels carve it up in the same order.
inline size_t forward_workspace_bytes(const ForwardParams& p, size_t acc_size) {
  const int64_t row = p.N > p.C ? p.N : p.C;
  const int64_t scratch = p.N > p.K ? p.N : p.K;
  return acc_size * static_cast<size_t>(2 * p.K * p.N + row + scratch + p.K * p.C) +
         sizeof(int32_t) * static_cast<size_t>(p.N);
}
inline size_t backward_workspace_bytes(const BackwardParams& p, size_t acc_size) {
  const int64_t row = p.N > p.C ? p.N : p.C;
  return acc_size * static_cast<size_t>(3 * p.K * p.N + p.K * p.C + 2 * row + 4 * p.K) +
         sizeof(int32_t) * static_cast<size_t>(p.N);
}

// Instruction sets the kernels are compiled for, best last.
enum class Isa { Default = 0, Avx2 = 1, Avx512 = 2 };

#define FUSEDATTN_DECLARE_CPU_KERNELS(isa)                                                  \
  namespace isa {                                                                           \
  template <typename scalar_t>                                                              \
  void forward(const ForwardParams& p, int64_t b_begin, int64_t b_end, void* workspace);    \
  template <typename scalar_t>                                                              \
  void backward(const BackwardParams& p, int64_t b_begin, int64_t b_end, void* workspace);  \
  }

FUSEDATTN_DECLARE_CPU_KERNELS(isa_default)
FUSEDATTN_DECLARE_CPU_KERNELS(isa_avx2)
FUSEDATTN_DECLARE_CPU_KERNELS(isa_avx512)

}  // namespace cpu
}  // namespace fusedattn
