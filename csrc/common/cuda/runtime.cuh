// The one header that kernel sources and their launch code include for CUDA basics. The same
// source compiles two ways: with nvcc for GPUs, and, with FUSEDATTN_CUDA_EMULATION defined, as
// plain C++ against the host emulation of the CUDA execution model (csrc/common/emulation, whose
// README states the rules), so that kernels run on the CPU, under ThreadSanitizer and under
// AddressSanitizer. Launch code has no #if of its own:
//
//   launch(kernel, grid, block, dynamic_smem, stream, args...)   host: launch, or throw
//   device_info(device)                                          host: the device's limits
//   dynamic_shared_memory<T>()                                   device: the block's shared memory
//   load_global_v4(p), store_global_v4(p, v)                     device: 16-byte accesses
//
// No torch header here: nvcc compiles this into every kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "launch_plan.h"

#if defined(FUSEDATTN_CUDA_EMULATION)
#include "../emulation/cuda_builtins.h"
#else
#include <cuda_runtime.h>
#endif

namespace fusedattn {
namespace cuda {

// Where a call is written. As a defaulted last parameter, current() captures the caller's file
// and line: the emulation's errors name kernel source lines with it, launch errors the launch.
#if defined(FUSEDATTN_CUDA_EMULATION)
using CallSite = ::fusedattn::emulation::SourceLocation;
#else
struct CallSite {
  const char* file;
  int line;
  static constexpr __host__ __device__ CallSite current(const char* file = __builtin_FILE(),
                                                        int line = __builtin_LINE()) {
    return {file, line};
  }
};
#endif

// (kDefaultSharedMemoryPerBlock: launch_plan.h, where plans read it too)

// ---------------------------------------------------------------------------------------------
// Device side.

// The block's dynamic shared memory, 16-byte aligned. Kernels declare no static __shared__
// variables (the emulation rejects them), so this is all their shared memory, of exactly the
// size the launch gives.
template <typename T>
__device__ __forceinline__ T* dynamic_shared_memory() {
#if defined(FUSEDATTN_CUDA_EMULATION)
  return static_cast<T*>(::fusedattn::emulation::dynamic_shared_memory());
#else
  extern __shared__ __align__(16) unsigned char fusedattn_dynamic_shared_memory[];
  return reinterpret_cast<T*>(fusedattn_dynamic_shared_memory);
#endif
}

namespace detail {
template <typename V>
constexpr bool is_vector16 =
    sizeof(V) == 16 && alignof(V) == 16 && std::is_trivially_copyable<V>::value;
}  // namespace detail

// One 16-byte global load (LDG.E.128) through the read-only data path (ld.global.nc), so only
// for data that no thread writes during the kernel. `address` must be 16-byte aligned: the
// emulation checks it, a GPU faults.
template <typename V>
__device__ __forceinline__ V load_global_v4(const V* address,
                                            CallSite where = CallSite::current()) {
  static_assert(detail::is_vector16<V>, "a 16-byte, 16-byte aligned type such as uint4 or float4");
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::check_alignment(address, 16, "load_global_v4", where);
  return *address;
#elif defined(__CUDACC__)
  (void)where;
  const uint4 bits = __ldg(reinterpret_cast<const uint4*>(address));
  V value;
  memcpy(&value, &bits, sizeof value);
  return value;
#else
  // A host compiler's pass over launch code (g++ on ops_cuda.cpp): declared, never called.
  (void)where;
  return *address;
#endif
}

// One 16-byte global store (STG.E.128); `address` must be 16-byte aligned.
template <typename V>
__device__ __forceinline__ void store_global_v4(V* address, const V& value,
                                                CallSite where = CallSite::current()) {
  static_assert(detail::is_vector16<V>, "a 16-byte, 16-byte aligned type such as uint4 or float4");
#if defined(FUSEDATTN_CUDA_EMULATION)
  ::fusedattn::emulation::check_alignment(address, 16, "store_global_v4", where);
  *address = value;
#elif defined(__CUDACC__)
  (void)where;
  uint4 bits;
  memcpy(&bits, &value, sizeof bits);
  // Inline PTX: a plain uint4 assignment was seen split into four 32-bit stores.
  asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(address), "r"(bits.x),
               "r"(bits.y), "r"(bits.z), "r"(bits.w)
               : "memory");
#else
  (void)where;
  *address = value;
#endif
}

// ---------------------------------------------------------------------------------------------
// Host side.

struct DeviceInfo {
  int sm_count;
  size_t shared_memory_per_block_optin;
  size_t shared_memory_per_sm;
  int max_threads_per_sm;
  size_t l2_cache_bytes;
  int compute_capability_major;
  int compute_capability_minor;
  std::string name;
};

// The stream a launch is queued on. It converts implicitly from cudaStream_t at the launch
// call, and so records where the launch is written, for its error message.
struct LaunchStream {
  LaunchStream(cudaStream_t queue, CallSite call = CallSite::current())
      : stream(queue), where(call) {}
  cudaStream_t stream;
  CallSite where;
};

namespace detail {

[[noreturn]] inline void throw_launch_failure(const std::string& message, CallSite where) {
  throw std::runtime_error("fusedattn: CUDA kernel launch failed: " + message + " (launch at " +
                           where.file + ":" + std::to_string(where.line) + ")");
}

#if defined(FUSEDATTN_CUDA_EMULATION)

// One emulated device serves every device index.
inline DeviceInfo query_device_info(int) {
  const ::fusedattn::emulation::DeviceAttributes a = ::fusedattn::emulation::device_attributes();
  return {a.sm_count,           a.shared_memory_per_block_optin, a.shared_memory_per_sm,
          a.max_threads_per_sm, a.l2_cache_bytes,                a.compute_capability_major,
          a.compute_capability_minor, a.name};
}

inline int launch_device(CallSite) { return 0; }

inline void raise_max_dynamic_shared_memory(const void* kernel, int, CallSite where) {
  const std::string error = ::fusedattn::emulation::set_max_dynamic_shared_memory(
      kernel, ::fusedattn::emulation::device_attributes().shared_memory_per_block_optin);
  if (!error.empty()) throw_launch_failure(error, where);
}

#else

inline void check_query(cudaError_t error, const char* call) {
  if (error != cudaSuccess) {
    throw std::runtime_error(std::string("fusedattn: ") + call + " failed: " +
                             cudaGetErrorString(error));
  }
}

inline DeviceInfo query_device_info(int device) {
  const auto attribute = [device](cudaDeviceAttr which) {
    int value = 0;
    check_query(cudaDeviceGetAttribute(&value, which, device), "cudaDeviceGetAttribute");
    return value;
  };
  cudaDeviceProp properties;  // for the name, which no attribute gives
  check_query(cudaGetDeviceProperties(&properties, device), "cudaGetDeviceProperties");
  return {attribute(cudaDevAttrMultiProcessorCount),
          static_cast<size_t>(attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin)),
          static_cast<size_t>(attribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor)),
          attribute(cudaDevAttrMaxThreadsPerMultiProcessor),
          static_cast<size_t>(attribute(cudaDevAttrL2CacheSize)),
          attribute(cudaDevAttrComputeCapabilityMajor),
          attribute(cudaDevAttrComputeCapabilityMinor),
          properties.name};
}

inline int launch_device(CallSite where) {
  int device = 0;
  const cudaError_t error = cudaGetDevice(&device);
  if (error != cudaSuccess) {
    throw_launch_failure(std::string("cudaGetDevice: ") + cudaGetErrorString(error), where);
  }
  return device;
}

inline void raise_max_dynamic_shared_memory(const void* kernel, int device, CallSite where) {
  int optin = 0;
  cudaError_t error =
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (error == cudaSuccess) {
    error = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin);
  }
  if (error != cudaSuccess) {
    throw_launch_failure(std::string("raising cudaFuncAttributeMaxDynamicSharedMemorySize: ") +
                             cudaGetErrorString(error), where);
  }
}

#endif

// Above 48 KB of dynamic shared memory a kernel needs its limit raised: raised here to the
// device's opt-in maximum, once per (kernel, device).
inline void allow_large_dynamic_shared_memory(const void* kernel, CallSite where) {
  static std::mutex mutex;
  static std::set<std::pair<const void*, int>> raised;
  const int device = launch_device(where);
  std::lock_guard<std::mutex> lock(mutex);
  if (raised.count({kernel, device}) != 0) return;
  raise_max_dynamic_shared_memory(kernel, device, where);
  raised.insert({kernel, device});
}

}  // namespace detail

// The device's limits: queried once per device and cached; in the emulation, the emulated
// attributes, read at every call (tests change them).
inline DeviceInfo device_info(int device) {
#if defined(FUSEDATTN_CUDA_EMULATION)
  return detail::query_device_info(device);
#else
  static std::mutex mutex;
  static std::map<int, DeviceInfo> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(device);
  if (it == cache.end()) it = cache.emplace(device, detail::query_device_info(device)).first;
  return it->second;
#endif
}

// kernel<<<grid, block, dynamic_smem, stream>>>(args...), throwing std::runtime_error
// ("fusedattn: CUDA kernel launch failed: ...") with this launch's own error, if any. The
// emulation runs the launch to completion before returning, and its errors (a divergent
// barrier, a deadlock, ...) are this launch's errors too.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t dynamic_smem,
            LaunchStream stream, Args&&... args) {
  if (dynamic_smem > kDefaultSharedMemoryPerBlock) {
    detail::allow_large_dynamic_shared_memory(reinterpret_cast<const void*>(kernel),
                                              stream.where);
  }
#if defined(FUSEDATTN_CUDA_EMULATION)
  // The emulator's messages begin with the file:line at fault.
  const std::string error = ::fusedattn::emulation::launch_kernel(
      kernel, {grid, block, dynamic_smem, stream.where}, std::forward<Args>(args)...);
  if (!error.empty()) throw std::runtime_error("fusedattn: CUDA kernel launch failed: " + error);
#else
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = dynamic_smem;
  config.stream = stream.stream;
  // The launch's own error: unlike cudaGetLastError, not one left by other code.
  const cudaError_t error = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (error != cudaSuccess) detail::throw_launch_failure(cudaGetErrorString(error), stream.where);
#endif
}

}  // namespace cuda
}  // namespace fusedattn
