// The CUDA built-in names for kernel code compiled as plain C++ against the emulator: each name
// is a macro for a function in fusedattn::emulation, so that the emulation defines no global
// symbol (it can share a library with code that links libcudart). Included by runtime.cuh when
// FUSEDATTN_CUDA_EMULATION is defined; not meant to be included directly.
#pragma once

// CUDA's own headers compile under a host compiler (no __CUDACC__): they give dim3, cudaStream_t
// and cudaError_t, and define __global__, __device__, __host__, __forceinline__ and __align__
// for host code. No runtime function they declare is called, nor linked.
#include <cuda_runtime_api.h>

#include "emulator.h"

#define threadIdx (::fusedattn::emulation::thread_index())
#define blockIdx (::fusedattn::emulation::block_index())
#define blockDim (::fusedattn::emulation::block_dim())
#define gridDim (::fusedattn::emulation::grid_dim())
#define warpSize (::fusedattn::emulation::kWarpSize)

#define __syncthreads ::fusedattn::emulation::syncthreads
#define __syncwarp ::fusedattn::emulation::syncwarp
#define __shfl_sync ::fusedattn::emulation::shfl_sync
#define __shfl_up_sync ::fusedattn::emulation::shfl_up_sync
#define __shfl_down_sync ::fusedattn::emulation::shfl_down_sync
#define __shfl_xor_sync ::fusedattn::emulation::shfl_xor_sync
#define __ballot_sync ::fusedattn::emulation::ballot_sync
#define __any_sync ::fusedattn::emulation::any_sync
#define __all_sync ::fusedattn::emulation::all_sync

#define atomicAdd ::fusedattn::emulation::atomic_add
#define atomicMax ::fusedattn::emulation::atomic_max
#define atomicMin ::fusedattn::emulation::atomic_min
#define atomicCAS ::fusedattn::emulation::atomic_cas
#define atomicExch ::fusedattn::emulation::atomic_exch
#define __threadfence ::fusedattn::emulation::threadfence

#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

// Shared memory is dynamic only, through fusedattn::cuda::dynamic_shared_memory<T>(): then the
// emulation can allocate each block's shared memory at exactly its size (README).
#undef __shared__
#define __shared__ \
  _Pragma("GCC error \"no static __shared__: use fusedattn::cuda::dynamic_shared_memory<T>()\"")
