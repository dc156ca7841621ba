// Inline PTX behind small device functions. Each has a GPU body (the inline asm) and an emulated
// body that follows the PTX ISA's documented semantics (csrc/common/emulation/README.md: the
// fragment layouts, the deferred copies). All need sm_80 or later; the bulk copy and the mbarrier
// functions need sm_90 and exist only where FUSEDATTN_PTX_HAS_BULK_COPY is 1: a kernel that uses
// them guards its body with that macro, and without the guard fails to compile for sm_80 rather
// than to run.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "runtime.cuh"

#if defined(FUSEDATTN_CUDA_EMULATION) || !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
#define FUSEDATTN_PTX_HAS_BULK_COPY 1
#else
#define FUSEDATTN_PTX_HAS_BULK_COPY 0
#endif

namespace fusedattn {
namespace cuda {
namespace ptx {

#if !defined(FUSEDATTN_CUDA_EMULATION)
// The .shared state-space address of a generic pointer into shared memory.
__device__ __forceinline__ uint32_t shared_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}
#endif

namespace detail {
template <typename T>
constexpr bool is_mma_input = std::is_same<T, __half>::value ||
                              std::is_same<T, __nv_bfloat16>::value;
}  // namespace detail

// D = A * B + C for one warp (every lane calls it, converged), with T = __half or
// __nv_bfloat16 inputs and float accumulators: mma.sync.aligned.m16n8k16.row.col.f32.T.T.f32.
// A is 16 x 16 (4 registers of two T), B is 16 x 8 (2 registers), C and D 16 x 8 (4 floats);
// which elements each lane holds is the PTX ISA's fragment layout (emulation README).
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4],
                                             const uint32_t (&b)[2], const float (&c)[4],
                                             CallSite where = CallSite::current()) {
  static_assert(detail::is_mma_input<T>, "mma inputs are __half or __nv_bfloat16");
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::mma_sync(16,
                                   std::is_same<T, __half>::value
                                       ? ::fusedattn::emulation::MmaInput::kF16
                                       : ::fusedattn::emulation::MmaInput::kBF16,
                                   d, a, b, c, where);
#else
  (void)where;
  if constexpr (std::is_same<T, __half>::value) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
          "f"(c[1]), "f"(c[2]), "f"(c[3]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
          "f"(c[1]), "f"(c[2]), "f"(c[3]));
  }
#endif
}

// The same for K = 8: mma.sync.aligned.m16n8k8.row.col.f32.T.T.f32. A is 16 x 8 (2 registers),
// B is 8 x 8 (1 register).
template <typename T>
__device__ __forceinline__ void mma_m16n8k8(float (&d)[4], const uint32_t (&a)[2],
                                            const uint32_t (&b)[1], const float (&c)[4],
                                            CallSite where = CallSite::current()) {
  static_assert(detail::is_mma_input<T>, "mma inputs are __half or __nv_bfloat16");
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::mma_sync(8,
                                   std::is_same<T, __half>::value
                                       ? ::fusedattn::emulation::MmaInput::kF16
                                       : ::fusedattn::emulation::MmaInput::kBF16,
                                   d, a, b, c, where);
#else
  (void)where;
  if constexpr (std::is_same<T, __half>::value) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, "
        "{%7, %8, %9, %10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b[0]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, "
        "{%7, %8, %9, %10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b[0]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
  }
#endif
}

// ldmatrix.sync.aligned.m8n8.x{kMatrices}.shared.b16, one warp (every lane calls it,
// converged): lane l passes the address of row l % 8 of matrix l / 8, 16 bytes in shared
// memory, 16-byte aligned (lanes past 8 * kMatrices pass any address); fragments[m] receives
// the lane's two elements of matrix m.
template <int kMatrices>
__device__ __forceinline__ void ldmatrix(uint32_t (&fragments)[kMatrices], const void* row,
                                         CallSite where = CallSite::current()) {
  static_assert(kMatrices == 1 || kMatrices == 2 || kMatrices == 4, "x1, x2 or x4");
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::ldmatrix_sync(kMatrices, false, fragments, row, where);
#else
  (void)where;
  if constexpr (kMatrices == 1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
                 : "=r"(fragments[0])
                 : "r"(shared_address(row))
                 : "memory");
  } else if constexpr (kMatrices == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(fragments[0]), "=r"(fragments[1])
                 : "r"(shared_address(row))
                 : "memory");
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(fragments[0]), "=r"(fragments[1]), "=r"(fragments[2]),
                   "=r"(fragments[3])
                 : "r"(shared_address(row))
                 : "memory");
  }
#endif
}

// The same with .trans: each matrix is transposed as it loads.
template <int kMatrices>
__device__ __forceinline__ void ldmatrix_trans(uint32_t (&fragments)[kMatrices], const void* row,
                                               CallSite where = CallSite::current()) {
  static_assert(kMatrices == 1 || kMatrices == 2 || kMatrices == 4, "x1, x2 or x4");
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::ldmatrix_sync(kMatrices, true, fragments, row, where);
#else
  (void)where;
  if constexpr (kMatrices == 1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(fragments[0])
                 : "r"(shared_address(row))
                 : "memory");
  } else if constexpr (kMatrices == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(fragments[0]), "=r"(fragments[1])
                 : "r"(shared_address(row))
                 : "memory");
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(fragments[0]), "=r"(fragments[1]), "=r"(fragments[2]),
                   "=r"(fragments[3])
                 : "r"(shared_address(row))
                 : "memory");
  }
#endif
}

// cp.async.ca.shared.global: copies kBytes (4, 8 or 16) from global `src` to shared `dst`, both
// kBytes-aligned, caching in L1. Only src_bytes are read; the rest of dst is zero-filled (the
// src-size form, for tails). The copy lands when cp_async_wait_group retires its group, and is
// visible to other threads after a barrier that follows the wait.
template <int kBytes>
__device__ __forceinline__ void cp_async_ca(void* dst, const void* src, int src_bytes = kBytes,
                                            CallSite where = CallSite::current()) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async.ca copies 4, 8 or 16 bytes");
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::cp_async(dst, src, kBytes, src_bytes, where);
#else
  (void)where;
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n"
               :
               : "r"(shared_address(dst)), "l"(src), "n"(kBytes), "r"(src_bytes)
               : "memory");
#endif
}

// cp.async.cg.shared.global: the same for 16 bytes, cached in L2 only.
__device__ __forceinline__ void cp_async_cg(void* dst, const void* src, int src_bytes = 16,
                                            CallSite where = CallSite::current()) {
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::cp_async(dst, src, 16, src_bytes, where);
#else
  (void)where;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
               :
               : "r"(shared_address(dst)), "l"(src), "r"(src_bytes)
               : "memory");
#endif
}

// The same, whole or nothing: 16 bytes from src where `copy`, else 16 zeros and no read of src
// (the ignore-src form: a predicate, where a src-size in a register costs address math).
__device__ __forceinline__ void cp_async_cg_or_zero(void* dst, const void* src, bool copy,
                                                    CallSite where = CallSite::current()) {
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::cp_async(dst, src, 16, copy ? 16 : 0, where);
#else
  (void)where;
  asm volatile(
      "{\n.reg .pred ignore;\nsetp.eq.u32 ignore, %2, 0;\n"
      "cp.async.cg.shared.global [%0], [%1], 16, ignore;\n}\n"
      :
      : "r"(shared_address(dst)), "l"(src), "r"(static_cast<uint32_t>(copy))
      : "memory");
#endif
}

// atom.add.acq_rel.gpu.global.u32: adds `value` and returns the old count, a release of what
// the calling thread (and, through a barrier before it, its block) wrote and an acquire of what
// the earlier arrivals released: a block counts itself done, and the last to arrive reads what
// the others wrote (a "last block" reduction whose ordering ThreadSanitizer follows in the
// emulation, which a __threadfence alone does not give it).
__device__ __forceinline__ unsigned atomic_add_acq_rel(unsigned* address, unsigned value) {
#if defined(FUSEDATTN_CUDA_EMULATION)
  return ::fusedattn::emulation::atomic_add_acq_rel(address, value);
#else
  unsigned old;
  asm volatile("atom.add.acq_rel.gpu.global.u32 %0, [%1], %2;\n"
               : "=r"(old)
               : "l"(address), "r"(value)
               : "memory");
  return old;
#endif
}

// cp.async.commit_group: the calling thread's uncommitted copies become its newest group.
__device__ __forceinline__ void cp_async_commit_group() {
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::cp_async_commit_group();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// cp.async.wait_group: waits until at most kPendingGroups of the calling thread's newest groups
// are in flight.
template <int kPendingGroups>
__device__ __forceinline__ void cp_async_wait_group() {
  static_assert(kPendingGroups >= 0, "a group count");
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::cp_async_wait_group(kPendingGroups);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPendingGroups) : "memory");
#endif
}

// cp.async.wait_all: commits the uncommitted copies and waits for all of them.
__device__ __forceinline__ void cp_async_wait_all() {
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::cp_async_commit_group();
  ::fusedattn::emulation::cp_async_wait_group(0);
#else
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

#if FUSEDATTN_PTX_HAS_BULK_COPY

// mbarrier.init.shared::cta.b64: `count` arrivals complete a phase. Other threads may use the
// barrier after a __syncthreads that follows the init.
__device__ __forceinline__ void mbarrier_init(uint64_t* barrier, uint32_t count,
                                              CallSite where = CallSite::current()) {
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::mbarrier_init(barrier, count, where);
#else
  (void)where;
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(barrier)),
               "r"(count)
               : "memory");
#endif
}

// mbarrier.arrive.shared::cta.b64: one arrival on the current phase.
__device__ __forceinline__ void mbarrier_arrive(uint64_t* barrier,
                                                CallSite where = CallSite::current()) {
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::mbarrier_arrive(barrier, 0, where);
#else
  (void)where;
  asm volatile("{\n .reg .b64 state;\n mbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(
                   shared_address(barrier))
               : "memory");
#endif
}

// mbarrier.arrive.expect_tx.shared::cta.b64: announces tx_bytes that bulk copies will deliver to
// the current phase, and arrives.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* barrier, uint32_t tx_bytes,
                                                          CallSite where = CallSite::current()) {
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::mbarrier_arrive(barrier, tx_bytes, where);
#else
  (void)where;
  asm volatile(
      "{\n .reg .b64 state;\n mbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::
          "r"(shared_address(barrier)),
      "r"(tx_bytes)
      : "memory");
#endif
}

// Waits, with mbarrier.try_wait.parity.shared::cta.b64, until the phase of parity `parity`
// (0 for the first phase, then alternating) has completed.
__device__ __forceinline__ void mbarrier_wait_parity(uint64_t* barrier, uint32_t parity,
                                                     CallSite where = CallSite::current()) {
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::mbarrier_wait_parity(barrier, parity, where);
#else
  (void)where;
  uint32_t complete = 0;
  do {
    asm volatile(
        "{\n .reg .pred done;\n mbarrier.try_wait.parity.shared::cta.b64 done, [%1], %2;\n"
        " selp.u32 %0, 1, 0, done;\n}\n"
        : "=r"(complete)
        : "r"(shared_address(barrier)), "r"(parity)
        : "memory");
  } while (!complete);
#endif
}

// fence.proxy.async.shared::cta: orders this thread's generic-proxy shared memory accesses with
// later async-proxy ones (a bulk copy into a buffer the block just read). The emulation has one
// proxy, so nothing to order.
__device__ __forceinline__ void fence_proxy_async_shared() {
#if !defined(FUSEDATTN_CUDA_EMULATION)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes: copies `bytes` (a multiple
// of 16) from global `src` to shared `dst`, both 16-byte aligned; the mbarrier's current phase
// completes once the bytes have landed and its arrivals are in (mbarrier_arrive_expect_tx
// announces them).
__device__ __forceinline__ void bulk_copy_global_to_shared(void* dst, const void* src,
                                                           uint32_t bytes, uint64_t* barrier,
                                                           CallSite where = CallSite::current()) {
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::bulk_copy_global_to_shared(dst, src, bytes, barrier, where);
#else
  (void)where;
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
      ::"r"(shared_address(dst)), "l"(src), "r"(bytes), "r"(shared_address(barrier))
      : "memory");
#endif
}

#endif  // FUSEDATTN_PTX_HAS_BULK_COPY

}  // namespace ptx
}  // namespace cuda
}  // namespace fusedattn
