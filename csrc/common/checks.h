// Argument checks shared by every op's host code (torch's stable ABI): a failed check throws
// std::runtime_error("fusedattn: <message>"), which Python sees as a RuntimeError. The public
// Python API validates first, with ValueError/TypeError; these guard direct calls of the ops.
#pragma once

#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>

#include <cstddef>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fusedattn {

using Tensor = torch::stable::Tensor;
using ScalarType = torch::headeronly::ScalarType;

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream message;
  message << "fusedattn: ";
  (message << ... << args);
  throw std::runtime_error(message.str());
}

#define FUSEDATTN_CHECK(cond, ...)                 \
  do {                                             \
    if (!(cond)) ::fusedattn::fail(__VA_ARGS__);   \
  } while (0)

// "[2, 3, 4]"
std::string sizes_string(const Tensor& t);

// "cpu", "cuda:1"
std::string device_string(const Tensor& t);

// float16, bfloat16, float32 or float64: the dtypes the ops take.
bool is_supported_dtype(ScalarType t);

// float32 for 16/32-bit inputs, float64 for float64: what every kernel accumulates in.
ScalarType accumulate_dtype(ScalarType input_dtype);
std::size_t accumulate_size(ScalarType input_dtype);

// A (batch, rows, pixels) view of a 3-D (B, R, N) tensor or a 4-D (B, R, H, W) one: its sizes
// and strides, with H and W merged into one pixel axis. Fails, naming the tensor, for other
// ranks, and for 4-D strides whose H and W do not merge (see pixels_merge).
struct PixelRows {
  int64_t batch, rows, pixels;
  int64_t stride_batch, stride_row, stride_pixel;
};
PixelRows pixel_rows(const Tensor& t, const char* name);

// Whether a 4-D tensor's H and W axes merge into one pixel axis: true for every NCHW,
// channels_last and sliced-channel tensor (read in place); false for, e.g., a transposed or
// W-sliced view (made contiguous once: as_mergeable).
bool pixels_merge(const Tensor& t);

// `t` when it is 3-D or its pixels merge, else a contiguous copy.
Tensor as_mergeable(const Tensor& t);

// An uninitialized contiguous tensor of `sizes` and `dtype` on `like`'s device (one call into
// torch's allocator, no dispatcher round trip: the ops' per-call overhead matters at B = 1).
Tensor empty_on(const Tensor& like, std::initializer_list<int64_t> sizes, ScalarType dtype);

// `t` itself when contiguous (no dispatcher round trip), else a contiguous copy.
Tensor as_contiguous(const Tensor& t);

void check_shape(const Tensor& t, const char* name, std::initializer_list<int64_t> expected);
void check_dtype(const Tensor& t, const char* name, ScalarType expected);
// `t` on the same device as `reference` (named reference_name in the message).
void check_same_device(const Tensor& t, const char* name, const Tensor& reference,
                       const char* reference_name);

}  // namespace fusedattn
