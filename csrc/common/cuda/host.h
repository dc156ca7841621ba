// Host-side helpers of the CUDA ops (torch's stable ABI): the kernels' dtype, the caller's
// current stream, and the device guard. Built against the CPU emulation of the CUDA execution
// model (FUSEDATTN_CUDA_EMULATION) the same host code runs CPU tensors: no stream, no guard.
#pragma once

#include "../checks.h"
#include "dtype.h"

#include <cuda_runtime_api.h>

#if !defined(FUSEDATTN_CUDA_EMULATION)
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/c/shim.h>
#endif

namespace fusedattn {
namespace cuda {

// The dispatch key the CUDA ops register their kernels under.
#if defined(FUSEDATTN_CUDA_EMULATION)
#define FUSEDATTN_CUDA_DISPATCH_KEY CPU
#else
#define FUSEDATTN_CUDA_DISPATCH_KEY CUDA
#endif

inline DType kernel_dtype(const Tensor& t) {
  switch (t.scalar_type()) {
    case ScalarType::Half: return DType::Half;
    case ScalarType::BFloat16: return DType::BFloat16;
    case ScalarType::Float: return DType::Float;
    default:
      fail("the cuda backend supports float16, bfloat16 and float32, got ",
           torch::headeronly::toString(t.scalar_type()));
  }
}

// The caller's current stream on the tensor's device: launches on it are ordered with the
// rest of the caller's work and captured by CUDA graphs.
inline cudaStream_t current_stream(const Tensor& t) {
#if defined(FUSEDATTN_CUDA_EMULATION)
  (void)t;
  return nullptr;
#else
  void* stream = nullptr;
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(t.get_device_index(), &stream));
  return static_cast<cudaStream_t>(stream);
#endif
}

// Makes the tensor's GPU current for the guard's lifetime.
class DeviceGuard {
 public:
  explicit DeviceGuard(const Tensor& t)
#if !defined(FUSEDATTN_CUDA_EMULATION)
      : guard_(t.get_device_index())
#endif
  {
    (void)t;
  }

 private:
#if !defined(FUSEDATTN_CUDA_EMULATION)
  torch::stable::accelerator::DeviceGuard guard_;
#endif
};

}  // namespace cuda
}  // namespace fusedattn
