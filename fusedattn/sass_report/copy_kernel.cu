// The yardstick of the SASS report's model (docs/performance_model.md): a plain vectorized
// copy, 16-byte loads and stores, four in flight per thread, a grid of resident blocks striding
// over the buffer. The model must put it near 100% of the copy bandwidth; if it does not, the
// model's constants are off, not the kernels it judges.
#include <cstdint>

constexpr int kCopyThreads = 256;
constexpr int kCopyUnroll = 4;

__global__ void __launch_bounds__(kCopyThreads) copy_kernel(const uint4* __restrict__ src,
                                                            uint4* __restrict__ dst, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kCopyThreads * kCopyUnroll;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * kCopyThreads * kCopyUnroll + threadIdx.x;
       base < n; base += stride) {
    uint4 v[kCopyUnroll];
#pragma unroll
    for (int u = 0; u < kCopyUnroll; ++u) {
      const int64_t i = base + u * kCopyThreads;
      if (i < n) v[u] = src[i];
    }
#pragma unroll
    for (int u = 0; u < kCopyUnroll; ++u) {
      const int64_t i = base + u * kCopyThreads;
      if (i < n) dst[i] = v[u];
    }
  }
}
