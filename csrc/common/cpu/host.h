// Host-side helpers of the CPU ops (torch's stable ABI): the dtype switch to the kernels'
// storage types, the parallel loop over samples with its per-thread workspace, and page advice
// for large outputs.
#pragma once

#include "../checks.h"
#include "storage.h"

#include <torch/csrc/stable/ops.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fusedattn {
namespace cpu {

// Calls fn(value of the kernels' storage type) for the tensor dtype.
template <typename Fn>
void dispatch_dtype(ScalarType t, Fn&& fn) {
  switch (t) {
    case ScalarType::Float: fn(float{}); break;
    case ScalarType::Double: fn(double{}); break;
    case ScalarType::Half: fn(Half{}); break;
    case ScalarType::BFloat16: fn(BFloat16{}); break;
    default: fail("unsupported dtype ", torch::headeronly::toString(t));
  }
}

// This thread's scratch of at least `bytes`, 64-byte aligned, kept between calls (a call's
// workspace is a few rows of its sample, so keeping it costs little and saves an allocation).
inline void* thread_workspace(std::size_t bytes) {
  thread_local std::unique_ptr<unsigned char[]> buffer;
  thread_local std::size_t capacity = 0;
  if (bytes + 64 > capacity) {
    capacity = bytes + 64;
    buffer.reset(new unsigned char[capacity]);
  }
  const auto addr = reinterpret_cast<uintptr_t>(buffer.get());
  return reinterpret_cast<void*>((addr + 63) & ~uintptr_t(63));
}

// Work (in multiply-adds) below which one thread does a chunk alone: starting a parallel
// region costs several microseconds, as much as ~30k multiply-adds on one core.
constexpr int64_t kMinWorkPerThread = int64_t(1) << 15;

// Runs kernel(params, b_begin, b_end, workspace) over the B samples, in parallel when there is
// enough work, with this thread's workspace of workspace_bytes.
template <typename Params, typename Kernel>
void parallel_over_batch(const Params& params, int64_t B, int64_t work_per_sample,
                         std::size_t workspace_bytes, Kernel kernel) {
  const int64_t per_sample = work_per_sample > 0 ? work_per_sample : 1;
  const int64_t grain = (kMinWorkPerThread + per_sample - 1) / per_sample;
  auto chunk = [&](int64_t b_begin, int64_t b_end) {
    kernel(params, b_begin, b_end, thread_workspace(workspace_bytes));
  };
  if (B <= grain) {
    if (B > 0) chunk(0, B);  // small work: no parallel region
    return;
  }
  torch::stable::parallel_for(0, B, grain, chunk);
}

// A freshly allocated large output is first touched by the kernel, one 4 KB page fault at a
// time: for the 52 MB feature gradient of B=32, C=1024, 20x20 that is ~13k faults, which cost
// more than the arithmetic on a VM. Asking for transparent huge pages (where the system leaves
// them to madvise) makes it ~26 faults. Advice only: nothing changes if it is declined.
inline void advise_huge_pages(const Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const std::size_t bytes = static_cast<std::size_t>(t.numel()) * t.element_size();
  if (bytes < 4 * kHuge) return;
  const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = (begin + bytes) & ~(kHuge - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
  (void)t;
#endif
}

}  // namespace cpu
}  // namespace fusedattn
