// The channel_attention CPU kernels compiled for the default instruction set (common/cpu/isa.h).
#include "../../common/cpu/target_default.h"
#if defined(FUSEDATTN_CPU_ISA_COMPILED)
#include "kernels_impl.h"
#endif
