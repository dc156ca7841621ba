// The CPU kernels for the baseline instruction set of the build (any x86-64 or aarch64 CPU).
#define FUSEDATTN_CPU_ISA isa_default
#include "attention_pool_cpu_kernels.h"
