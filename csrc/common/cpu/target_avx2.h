// Included first by an op's kernels_avx2.cpp: the rest of the translation unit is compiled for
// x86-64 CPUs with AVX2 and FMA (picked at run time when the CPU has them), 32-byte vectors.
#pragma once
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma,f16c")
#define FUSEDATTN_CPU_ISA isa_avx2
#define FUSEDATTN_CPU_VEC_BYTES 32
#define FUSEDATTN_CPU_ISA_COMPILED 1
// The shared math headers' functions get internal linkage in every ISA's translation unit.
#define FUSEDATTN_HD static inline
#endif
