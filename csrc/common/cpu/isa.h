// Instruction sets the CPU kernels are compiled for, one translation unit each (an op's
// kernels_<isa>.cpp includes common/cpu/target_<isa>.h, then its kernels), and the pick at run
// time.
#pragma once

namespace fusedattn {
namespace cpu {

// Best last.
enum class Isa { Default = 0, Avx2 = 1, Avx512 = 2 };

// The best instruction set this CPU runs, unless FUSEDATTN_CPU_ISA (default, avx2, avx512) asks
// for a lower one (the tests run every variant the machine supports); read at every call.
Isa pick_isa();

// M(namespace) for each instruction set's kernel namespace: declares or dispatches them all.
#define FUSEDATTN_FOR_EACH_CPU_ISA(M) M(isa_default) M(isa_avx2) M(isa_avx512)

}  // namespace cpu
}  // namespace fusedattn
