// Storage types of the CPU kernels: 16-bit floats as raw bits (the kernels convert them
// themselves, common/cpu/vec.h, so that no library inline code is compiled with per-ISA flags),
// and the accumulate type of each storage type. No torch types: kernel translation units
// include only C headers and our own.
#pragma once

#include <stdint.h>

namespace fusedattn {
namespace cpu {

struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

// float for 16/32-bit storage, double for double.
template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

}  // namespace cpu
}  // namespace fusedattn
