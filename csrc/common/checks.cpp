#include "checks.h"

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
