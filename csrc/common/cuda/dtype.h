// The 16/32-bit float types the CUDA kernels take, named without CUDA headers so that host code
// (.cpp, torch's stable ABI) and kernels (.cu) share the switch.
#pragma once

namespace fusedattn {
namespace cuda {

enum class DType { Half, BFloat16, Float };

}  // namespace cuda
}  // namespace fusedattn
