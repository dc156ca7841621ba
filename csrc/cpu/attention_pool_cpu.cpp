// Host side of the CPU ops: argument checks, allocation, dtype and instruction-set dispatch, and
// the parallel loop over samples. The kernels themselves are in attention_pool_cpu_kernels.h.
#include "../attention_pool.h"
#include "attention_pool_cpu.h"

#include <torch/csrc/stable/library.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fusedattn {
namespace cpu {
namespace {

// The best instruction set this CPU runs, unless FUSEDATTN_CPU_ISA (default, avx2, avx512) asks
// for a lower one (the tests run every variant the machine supports).
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

// The forward and backward kernels compiled for an instruction set.
template <typename scalar_t>
struct Kernels {
  void (*forward)(const ForwardParams&, int64_t, int64_t, void*);
  void (*backward)(const BackwardParams&, int64_t, int64_t, void*);
};

template <typename scalar_t>
Kernels<scalar_t> kernels_for(Isa isa) {
  switch (isa) {
#if defined(__x86_64__) || defined(_M_X64)
    case Isa::Avx512: return {&isa_avx512::forward<scalar_t>, &isa_avx512::backward<scalar_t>};
    case Isa::Avx2: return {&isa_avx2::forward<scalar_t>, &isa_avx2::backward<scalar_t>};
#endif
    default: return {&isa_default::forward<scalar_t>, &isa_default::backward<scalar_t>};
  }
}

// A freshly allocated large output is first touched by the kernel, one 4 KB page fault at a
// time: for the 52 MB feature gradient of B=32, C=1024, 20x20 that is ~13k faults, which cost
// more than the arithmetic on a VM. Asking for transparent huge pages (where the system leaves
// them to madvise) makes it ~26 faults. Advice only: nothing changes if it is declined.
void advise_huge_pages(const Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  if (bytes < 4 * kHuge) return;
  const auto begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = (begin + bytes) & ~(kHuge - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
  (void)t;
#endif
}

// Calls fn(value of the kernels' storage type) for the tensor's dtype.
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

size_t accumulate_size(ScalarType t) {
  return accumulate_dtype(t) == ScalarType::Double ? sizeof(double) : sizeof(float);
}

// Runs kernel(params, b_begin, b_end, workspace) over the batch, in parallel, with one
// 64-byte-aligned workspace per chunk of samples.
template <typename Params, typename Kernel>
void parallel_over_batch(const Params& params, int64_t B, size_t workspace_bytes, Kernel kernel) {
  torch::stable::parallel_for(0, B, 1, [&](int64_t b_begin, int64_t b_end) {
    std::unique_ptr<unsigned char[]> workspace(new unsigned char[workspace_bytes + 64]);
    auto addr = reinterpret_cast<uintptr_t>(workspace.get());
    kernel(params, b_begin, b_end, reinterpret_cast<void*>((addr + 63) & ~uintptr_t(63)));
  });
}

std::tuple<Tensor, Tensor, Tensor, Tensor> attention_pool_fwd_cpu(
    const Tensor& features, const Tensor& logits, const std::string& pool,
    bool compute_diversity) {
  const PoolShape sh = check_forward_args(features, logits, pool);
  auto [pooled, importance, diversity, logsumexp] =
      allocate_forward_outputs(features, sh, compute_diversity);
  const ForwardParams p = forward_params(
      features, logits, sh, pooled, importance,
      compute_diversity ? std::optional<Tensor>(diversity) : std::nullopt, logsumexp);
  const Isa isa = pick_isa();
  dispatch_dtype(features.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    const size_t acc = accumulate_size(features.scalar_type());
    parallel_over_batch(p, sh.B, forward_workspace_bytes(p, acc), kernels_for<scalar_t>(isa).forward);
  });
  return {pooled, importance, diversity, logsumexp};
}

std::tuple<Tensor, Tensor> attention_pool_bwd_cpu(
    const Tensor& grad_pooled, const Tensor& grad_importance,
    const std::optional<Tensor>& grad_diversity, const Tensor& features, const Tensor& logits,
    const Tensor& importance, const Tensor& logsumexp, const std::string& pool) {
  const PoolShape sh = check_backward_args(grad_pooled, grad_importance, grad_diversity, features,
                                           logits, importance, logsumexp, pool);
  auto [grad_features, grad_logits] = allocate_backward_outputs(features, logits);
  advise_huge_pages(grad_features);
  BackwardInputs inputs;
  const BackwardParams p =
      backward_params(grad_pooled, grad_importance, grad_diversity, features, logits, importance,
                      logsumexp, sh, grad_features, grad_logits, inputs);
  const Isa isa = pick_isa();
  dispatch_dtype(features.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    const size_t acc = accumulate_size(features.scalar_type());
    parallel_over_batch(p, sh.B, backward_workspace_bytes(p, acc),
                        kernels_for<scalar_t>(isa).backward);
  });
  return {grad_features, grad_logits};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fusedattn, CPU, m) {
  m.impl("attention_pool_fwd", TORCH_BOX(&attention_pool_fwd_cpu));
  m.impl("attention_pool_bwd", TORCH_BOX(&attention_pool_bwd_cpu));
}

}  // namespace cpu
}  // namespace fusedattn
