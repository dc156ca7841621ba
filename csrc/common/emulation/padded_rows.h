// A row-strided host buffer for test drivers whose padding (the stride - cols elements after
// every row) is poisoned under AddressSanitizer, so that a kernel reading one element past ANY
// row is caught; in a dense buffer only a read past the last row is. ASan poisons at 8-byte
// granularity: with stride * sizeof(T) a multiple of 8, every padding byte is poisoned. Without
// ASan the padding is ordinary memory, filled with 0xFF bytes (NaN as float or half).
#pragma once

#include <sanitizer/asan_interface.h>

#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace fusedattn {
namespace emulation {

template <typename T>
class PaddedRows {
  static_assert(std::is_trivially_copyable<T>::value, "plain element types");

 public:
  PaddedRows(size_t rows, size_t cols, size_t stride)
      : rows_(rows), cols_(cols), stride_(stride), storage_(rows * stride) {
    if (cols > stride) throw std::invalid_argument("PaddedRows: cols > stride");
    std::memset(storage_.data(), 0xFF, storage_.size() * sizeof(T));
    for (size_t r = 0; r < rows_; ++r) {
      ASAN_POISON_MEMORY_REGION(row(r) + cols_, (stride_ - cols_) * sizeof(T));
    }
  }
  ~PaddedRows() { ASAN_UNPOISON_MEMORY_REGION(storage_.data(), storage_.size() * sizeof(T)); }
  PaddedRows(const PaddedRows&) = delete;
  PaddedRows& operator=(const PaddedRows&) = delete;

  T* data() { return storage_.data(); }
  T* row(size_t r) { return storage_.data() + r * stride_; }
  T& at(size_t r, size_t c) { return row(r)[c]; }
  size_t rows() const { return rows_; }
  size_t cols() const { return cols_; }
  size_t stride() const { return stride_; }

 private:
  size_t rows_, cols_, stride_;
  std::vector<T> storage_;
};

}  // namespace emulation
}  // namespace fusedattn
