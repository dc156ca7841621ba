#include "isa.h"

#include "../checks.h"

#include <cstdlib>
#include <cstring>

namespace fusedattn {
namespace cpu {

Isa pick_isa() {
  Isa best = Isa::Default;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::Avx2;
  if (best == Isa::Avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    best = Isa::Avx512;
  }
#endif
  const char* forced = std::getenv("FUSEDATTN_CPU_ISA");
  if (forced != nullptr && *forced != '\0') {
    Isa want = Isa::Default;
    if (std::strcmp(forced, "avx2") == 0) {
      want = Isa::Avx2;
    } else if (std::strcmp(forced, "avx512") == 0) {
      want = Isa::Avx512;
    } else {
      FUSEDATTN_CHECK(std::strcmp(forced, "default") == 0,
                      "FUSEDATTN_CPU_ISA must be default, avx2 or avx512, got '", forced, "'");
    }
    FUSEDATTN_CHECK(static_cast<int>(want) <= static_cast<int>(best), "FUSEDATTN_CPU_ISA=",
                    forced, " but this CPU (or build) does not support it");
    best = want;
  }
  return best;
}

}  // namespace cpu
}  // namespace fusedattn
