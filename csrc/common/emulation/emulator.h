// The host emulation of the CUDA execution model: a launch runs its blocks one at a time, each
// block's threads as fibers on the calling thread that switch only at synchronizing operations.
// Kernels do not include this header: they include csrc/common/cuda/runtime.cuh, which maps the
// CUDA built-ins onto the functions below when FUSEDATTN_CUDA_EMULATION is defined. The semantics
// (what is an error, the sanitizer model, the PTX layouts) are in README.md next to this file.
#pragma once

#include <vector_types.h>  // CUDA's dim3, uint3, float4, ...: plain structs under a host compiler

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace fusedattn {
namespace emulation {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Where a call is written. As a defaulted last parameter, current() captures the CALLER's file
// and line, so that errors name the kernel source rather than the emulator.
struct SourceLocation {
  const char* file;
  int line;
  static constexpr SourceLocation current(const char* file = __builtin_FILE(),
                                          int line = __builtin_LINE()) {
    return {file, line};
  }
};

// ---------------------------------------------------------------------------------------------
// Configuration (host side). Defaults model an NVIDIA H200; the environment variables
// FUSEDATTN_EMULATE_SM_COUNT, FUSEDATTN_EMULATE_BLOCK_ORDER and FUSEDATTN_EMULATE_STACK_KB
// override them when the emulator is first used.

struct DeviceAttributes {
  std::string name = "NVIDIA H200 (emulated)";
  int sm_count = 132;
  int compute_capability_major = 9;
  int compute_capability_minor = 0;
  int max_threads_per_block = 1024;
  int max_threads_per_sm = 2048;
  size_t shared_memory_per_block = 48 * 1024;  // without the per-kernel opt-in
  size_t shared_memory_per_block_optin = 232448;
  size_t shared_memory_per_sm = 233472;
  size_t l2_cache_bytes = 52428800;
};

DeviceAttributes device_attributes();
void set_device_attributes(const DeviceAttributes& attributes);

// The order in which a launch runs its blocks (by linear block index).
enum class BlockOrder { kForward, kReverse, kShuffle };
void set_block_order(BlockOrder order, uint64_t shuffle_seed = 0);

// Bytes of stack per emulated thread (default 256 KiB, enough for kernels under ASan).
void set_fiber_stack_size(size_t bytes);

// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes): returns ""
// or the error.
std::string set_max_dynamic_shared_memory(const void* kernel, size_t bytes);

// ---------------------------------------------------------------------------------------------
// Launch (host side).

struct LaunchConfig {
  dim3 grid;
  dim3 block;
  size_t dynamic_shared_memory;
  SourceLocation where;  // the launch call, for error messages
};

// Runs thread_main(call) as every thread of every block; returns "" or the launch's error.
using ThreadMain = void (*)(const void* call);
std::string run_kernel(const void* kernel, const LaunchConfig& config, ThreadMain thread_main,
                       const void* call);

// kernel<<<config>>>(args...): the arguments are converted to the kernel's parameter types once,
// like CUDA's parameter buffer, and every thread calls the kernel with them.
template <typename... Params, typename... Args>
std::string launch_kernel(void (*kernel)(Params...), const LaunchConfig& config,
                          Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "wrong number of kernel arguments");
  struct Call {
    void (*kernel)(Params...);
    std::tuple<std::decay_t<Params>...> params;
  };
  const Call call{kernel, std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)};
  const ThreadMain thread_main = [](const void* p) {
    const Call& c = *static_cast<const Call*>(p);
    std::apply(c.kernel, c.params);
  };
  return run_kernel(reinterpret_cast<const void*>(kernel), config, thread_main, &call);
}

// ---------------------------------------------------------------------------------------------
// The CUDA built-ins, called from kernel code (runtime.cuh maps the CUDA names onto these).

const uint3& thread_index();
const uint3& block_index();
const dim3& block_dim();
const dim3& grid_dim();

// The block's dynamic shared memory: exactly the launched size, 16-byte aligned.
void* dynamic_shared_memory();

void syncthreads(SourceLocation where = SourceLocation::current());
void syncwarp(unsigned mask = kFullMask, SourceLocation where = SourceLocation::current());

namespace detail {
enum class Shuffle { kIndex, kUp, kDown, kXor };

// One lane's part of a shuffle of `bytes` bytes; returns the bits it receives.
uint64_t shuffle(Shuffle mode, unsigned mask, uint64_t bits, int bytes, unsigned lane_operand,
                 int width, SourceLocation where);

template <typename T>
T shuffle(Shuffle mode, unsigned mask, T var, unsigned lane_operand, int width,
          SourceLocation where) {
  static_assert(std::is_trivially_copyable_v<T> && (sizeof(T) == 2 || sizeof(T) == 4 ||
                                                    sizeof(T) == 8),
                "shuffles move 2-, 4- or 8-byte values");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = shuffle(mode, mask, bits, sizeof(T), lane_operand, width, where);
  std::memcpy(&var, &bits, sizeof(T));
  return var;
}
}  // namespace detail

template <typename T>
T shfl_sync(unsigned mask, T var, int src_lane, int width = kWarpSize,
            SourceLocation where = SourceLocation::current()) {
  return detail::shuffle(detail::Shuffle::kIndex, mask, var, static_cast<unsigned>(src_lane),
                         width, where);
}
template <typename T>
T shfl_up_sync(unsigned mask, T var, unsigned delta, int width = kWarpSize,
               SourceLocation where = SourceLocation::current()) {
  return detail::shuffle(detail::Shuffle::kUp, mask, var, delta, width, where);
}
template <typename T>
T shfl_down_sync(unsigned mask, T var, unsigned delta, int width = kWarpSize,
                 SourceLocation where = SourceLocation::current()) {
  return detail::shuffle(detail::Shuffle::kDown, mask, var, delta, width, where);
}
template <typename T>
T shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = kWarpSize,
                SourceLocation where = SourceLocation::current()) {
  return detail::shuffle(detail::Shuffle::kXor, mask, var, static_cast<unsigned>(lane_mask),
                         width, where);
}

unsigned ballot_sync(unsigned mask, int predicate,
                     SourceLocation where = SourceLocation::current());
int any_sync(unsigned mask, int predicate, SourceLocation where = SourceLocation::current());
int all_sync(unsigned mask, int predicate, SourceLocation where = SourceLocation::current());

// Atomics are relaxed, as CUDA's are, and go through the compiler's __atomic builtins so that
// ThreadSanitizer sees atomic accesses. They are not switch points. The overloads are CUDA's:
// there is no float atomicMax, atomicMin or atomicCAS.
namespace detail {
template <typename T, typename Update>
T atomic_update(T* address, Update update) {
  T old;
  __atomic_load(address, &old, __ATOMIC_RELAXED);
  T desired;
  do {
    desired = update(old);
  } while (!__atomic_compare_exchange(address, &old, &desired, true, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED));
  return old;
}

template <typename T>
T atomic_cas(T* address, T compare, T value) {
  __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;  // the old value, whether or not it matched
}
}  // namespace detail

inline int atomic_add(int* address, int value) {
  return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}
inline unsigned atomic_add(unsigned* address, unsigned value) {
  return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}
inline unsigned long long atomic_add(unsigned long long* address, unsigned long long value) {
  return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}
inline float atomic_add(float* address, float value) {
  return detail::atomic_update(address, [value](float old) { return old + value; });
}
inline double atomic_add(double* address, double value) {
  return detail::atomic_update(address, [value](double old) { return old + value; });
}
inline int atomic_max(int* address, int value) {
  return detail::atomic_update(address, [value](int old) { return old > value ? old : value; });
}
inline unsigned atomic_max(unsigned* address, unsigned value) {
  return detail::atomic_update(address,
                               [value](unsigned old) { return old > value ? old : value; });
}
inline int atomic_min(int* address, int value) {
  return detail::atomic_update(address, [value](int old) { return old < value ? old : value; });
}
inline unsigned atomic_min(unsigned* address, unsigned value) {
  return detail::atomic_update(address,
                               [value](unsigned old) { return old < value ? old : value; });
}
inline int atomic_cas(int* address, int compare, int value) {
  return detail::atomic_cas(address, compare, value);
}
inline unsigned atomic_cas(unsigned* address, unsigned compare, unsigned value) {
  return detail::atomic_cas(address, compare, value);
}
inline unsigned long long atomic_cas(unsigned long long* address, unsigned long long compare,
                                     unsigned long long value) {
  return detail::atomic_cas(address, compare, value);
}
inline int atomic_exch(int* address, int value) {
  return __atomic_exchange_n(address, value, __ATOMIC_RELAXED);
}
inline unsigned atomic_exch(unsigned* address, unsigned value) {
  return __atomic_exchange_n(address, value, __ATOMIC_RELAXED);
}
inline float atomic_exch(float* address, float value) {
  float old;
  __atomic_exchange(address, &value, &old, __ATOMIC_RELAXED);
  return old;
}

// atom.add.acq_rel.gpu (ptx::atomic_add_acq_rel): an acquire-release read-modify-write, which
// ThreadSanitizer models: the arrivals before it happen before what follows it, as between the
// blocks of a "last block" reduction (README).
inline unsigned atomic_add_acq_rel(unsigned* address, unsigned value) {
  return __atomic_fetch_add(address, value, __ATOMIC_ACQ_REL);
}

// __threadfence orders the calling thread's memory accesses. The emulation runs one thread at
// a time, so it has nothing to order; ThreadSanitizer does not model fences either (README).
inline void threadfence() {}

// ---------------------------------------------------------------------------------------------
// The emulated bodies of csrc/common/cuda/ptx.cuh and of runtime.cuh's vector accesses.

// Fails the launch unless `address` is a multiple of `alignment`.
void check_alignment(const void* address, size_t alignment, const char* operation,
                     SourceLocation where);

enum class MmaInput { kF16, kBF16 };
// mma.sync.aligned.m16n8k{k}.row.col.f32.{f16,bf16}.{f16,bf16}.f32, a warp collective: this
// lane's fragments of A (k / 4 registers), B (k / 8 registers), C and D (4 floats each).
void mma_sync(int k, MmaInput input, float* d, const uint32_t* a, const uint32_t* b,
              const float* c, SourceLocation where);

// ldmatrix.sync.aligned.m8n8.x{matrices}{.trans}.shared.b16, a warp collective: `row` is the
// row this lane addresses; fragments receives one register per matrix.
void ldmatrix_sync(int matrices, bool transpose, uint32_t* fragments, const void* row,
                   SourceLocation where);

// cp.async.{ca,cg}.shared.global [dst], [src], copy_bytes, src_bytes: deferred until a
// cp.async.wait_group retires its group.
void cp_async(void* dst, const void* src, int copy_bytes, int src_bytes, SourceLocation where);
void cp_async_commit_group();
// Retires every committed group but the newest `pending_groups`.
void cp_async_wait_group(int pending_groups);

// mbarrier.init / arrive{.expect_tx} / try_wait.parity on a 64-bit mbarrier in shared memory,
// and cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.
void mbarrier_init(uint64_t* barrier, unsigned count, SourceLocation where);
void mbarrier_arrive(uint64_t* barrier, unsigned expect_tx_bytes, SourceLocation where);
void mbarrier_wait_parity(uint64_t* barrier, unsigned parity, SourceLocation where);
void bulk_copy_global_to_shared(void* dst, const void* src, unsigned bytes, uint64_t* barrier,
                                SourceLocation where);

}  // namespace emulation
}  // namespace fusedattn
