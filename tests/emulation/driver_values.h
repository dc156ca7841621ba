// What every op's sanitizer driver (tests/emulation/<op>_driver.cpp) uses to make inputs and
// read outputs: a seeded generator and conversions between double and the storage types.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace fusedattn {
namespace emulation {
namespace driver {

class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  double next() {  // [-2, 2)
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state_ >> 11) / 9007199254740992.0 * 4.0 - 2.0;
  }

 private:
  uint64_t state_;
};

template <typename T> T to_storage(double x);
template <> inline float to_storage<float>(double x) { return static_cast<float>(x); }
template <> inline __half to_storage<__half>(double x) {
  return __float2half_rn(static_cast<float>(x));
}
template <> inline __nv_bfloat16 to_storage<__nv_bfloat16>(double x) {
  return __float2bfloat16_rn(static_cast<float>(x));
}
inline double to_double(float x) { return x; }
inline double to_double(__half x) { return __half2float(x); }
inline double to_double(__nv_bfloat16 x) { return __bfloat162float(x); }

}  // namespace driver
}  // namespace emulation
}  // namespace fusedattn
