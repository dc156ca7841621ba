// The CPU kernels for x86-64 CPUs with AVX-512 (F, BW, DQ, VL; picked at run time).
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")
#define FUSEDATTN_CPU_ISA isa_avx512
#define FUSEDATTN_CPU_VEC_BYTES 64
#include "attention_pool_cpu_kernels.h"
#endif
