// Included first by an op's kernels_default.cpp: the kernels for the build's baseline
// instruction set (any x86-64 or aarch64 CPU), 16-byte vectors.
#pragma once
#define FUSEDATTN_CPU_ISA isa_default
#define FUSEDATTN_CPU_VEC_BYTES 16
#define FUSEDATTN_CPU_ISA_COMPILED 1
// The shared math headers' functions get internal linkage in every ISA's translation unit.
#define FUSEDATTN_HD static inline
