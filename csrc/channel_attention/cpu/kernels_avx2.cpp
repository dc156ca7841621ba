// The channel_attention CPU kernels compiled for the avx2 instruction set (common/cpu/isa.h).
#include "../../common/cpu/target_avx2.h"
#if defined(FUSEDATTN_CPU_ISA_COMPILED)
#include "kernels_impl.h"
#endif
