// The CPU kernels for x86-64 CPUs with AVX2 and FMA (picked at run time when the CPU has them).
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma,f16c")
#define FUSEDATTN_CPU_ISA isa_avx2
#define FUSEDATTN_CPU_VEC_BYTES 32
#include "attention_pool_cpu_kernels.h"
#endif
