// Included first by an op's kernels_avx512.cpp: the rest of the translation unit is compiled
// for x86-64 CPUs with AVX-512 F, BW, DQ and VL (picked at run time), 64-byte vectors.
#pragma once
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")
#define FUSEDATTN_CPU_ISA isa_avx512
#define FUSEDATTN_CPU_VEC_BYTES 64
#define FUSEDATTN_CPU_ISA_COMPILED 1
// The shared math headers' functions get internal linkage in every ISA's translation unit.
#define FUSEDATTN_HD static inline
#endif
