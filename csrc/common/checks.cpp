#include "checks.h"

#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/ops.h>
#include <torch/headeronly/util/shim_utils.h>

namespace fusedattn {

using torch::headeronly::toString;

std::string sizes_string(const Tensor& t) {
  std::ostringstream s;
  s << "[";
  for (int64_t d = 0; d < t.dim(); ++d) s << (d ? ", " : "") << t.size(d);
  s << "]";
  return s.str();
}

std::string device_string(const Tensor& t) {
  std::ostringstream s;
  s << (t.is_cpu() ? "cpu" : t.is_cuda() ? "cuda" : "device");
  if (!t.is_cpu()) s << ":" << static_cast<int>(t.get_device_index());
  return s.str();
}

bool is_supported_dtype(ScalarType t) {
  return t == ScalarType::Half || t == ScalarType::BFloat16 || t == ScalarType::Float ||
         t == ScalarType::Double;
}

ScalarType accumulate_dtype(ScalarType input_dtype) {
  return input_dtype == ScalarType::Double ? ScalarType::Double : ScalarType::Float;
}

std::size_t accumulate_size(ScalarType input_dtype) {
  return accumulate_dtype(input_dtype) == ScalarType::Double ? sizeof(double) : sizeof(float);
}

PixelRows pixel_rows(const Tensor& t, const char* name) {
  const int64_t dim = t.dim();
  FUSEDATTN_CHECK(dim == 3 || dim == 4, name, " must be 3-D (B, R, N) or 4-D (B, R, H, W), got shape ",
                  sizes_string(t));
  PixelRows v{t.size(0), t.size(1), t.size(2), t.stride(0), t.stride(1), t.stride(2)};
  if (dim == 4) {
    FUSEDATTN_CHECK(pixels_merge(t), name,
                    " must have its H and W axes mergeable into one pixel axis, got shape ",
                    sizes_string(t), " with strides [", t.stride(0), ", ", t.stride(1), ", ",
                    t.stride(2), ", ", t.stride(3), "]");
    v.pixels = t.size(2) * t.size(3);
    v.stride_pixel = t.size(3) == 1 ? t.stride(2) : t.stride(3);
  }
  return v;
}

bool pixels_merge(const Tensor& t) {
  const int64_t H = t.size(2), W = t.size(3);
  return H == 1 || W == 1 || t.stride(2) == W * t.stride(3);
}

Tensor as_mergeable(const Tensor& t) {
  return t.dim() == 4 && !pixels_merge(t) ? torch::stable::contiguous(t) : t;
}

Tensor empty_on(const Tensor& like, std::initializer_list<int64_t> sizes, ScalarType dtype) {
  int64_t shape[8], strides[8];
  const int64_t ndim = static_cast<int64_t>(sizes.size());
  int64_t d = 0;
  for (int64_t size : sizes) shape[d++] = size;
  int64_t stride = 1;
  for (d = ndim - 1; d >= 0; --d) {
    strides[d] = stride;
    stride *= shape[d] > 1 ? shape[d] : 1;
  }
  int32_t device_type, dtype_code;
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_device_type(like.get(), &device_type));
  switch (dtype) {
    case ScalarType::Half: dtype_code = aoti_torch_dtype_float16(); break;
    case ScalarType::BFloat16: dtype_code = aoti_torch_dtype_bfloat16(); break;
    case ScalarType::Float: dtype_code = aoti_torch_dtype_float32(); break;
    case ScalarType::Double: dtype_code = aoti_torch_dtype_float64(); break;
    default: fail("empty_on: unsupported dtype ", toString(dtype));
  }
  AtenTensorHandle handle;
  TORCH_ERROR_CODE_CHECK(aoti_torch_empty_strided(ndim, shape, strides, dtype_code, device_type,
                                                  like.get_device_index(), &handle));
  return Tensor(handle);
}

Tensor as_contiguous(const Tensor& t) {
  return t.is_contiguous() ? t : torch::stable::contiguous(t);
}

void check_shape(const Tensor& t, const char* name, std::initializer_list<int64_t> expected) {
  bool same = t.dim() == static_cast<int64_t>(expected.size());
  int64_t d = 0;
  for (int64_t size : expected) same = same && t.size(d++) == size;
  if (!same) {
    std::ostringstream e;
    e << "[";
    d = 0;
    for (int64_t size : expected) e << (d++ ? ", " : "") << size;
    e << "]";
    fail(name, " must have shape ", e.str(), ", got ", sizes_string(t));
  }
}

void check_dtype(const Tensor& t, const char* name, ScalarType expected) {
  FUSEDATTN_CHECK(t.scalar_type() == expected, name, " must be ", toString(expected), ", got ",
                  toString(t.scalar_type()));
}

void check_same_device(const Tensor& t, const char* name, const Tensor& reference,
                       const char* reference_name) {
  FUSEDATTN_CHECK(t.device() == reference.device(), name, " must be on the ", reference_name,
                  "' device ", device_string(reference), ", got ", device_string(t));
}

}  // namespace fusedattn
