// Shared-memory tile geometry as plain constexpr arithmetic (no CUDA headers), so that host
// code (launch plans, the SASS report) computes exactly the layouts the kernels use
// (common/cuda/tile.cuh).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fusedattn {
namespace cuda {

// Elements of element_size bytes in one 16-byte chunk.
constexpr int chunk_elements(int element_size) { return 16 / element_size; }

// The row length (elements) of a shared tile holding `cols` columns: whole 16-byte chunks and
// one more, so that rows stay 16-byte aligned (ldmatrix, cp.async) and 8 consecutive rows fall
// in distinct banks.
constexpr int padded_ld(int cols, int element_size) {
  return (cols + chunk_elements(element_size) - 1) / chunk_elements(element_size) *
             chunk_elements(element_size) +
         chunk_elements(element_size);
}

// `count` elements rounded up to whole 16-byte chunks.
constexpr int whole_chunks(int count, int element_size) {
  return (count + chunk_elements(element_size) - 1) / chunk_elements(element_size) *
         chunk_elements(element_size);
}

// `bytes` rounded up to whole 16-byte chunks (an offset where 16-byte copies may start).
constexpr size_t whole_chunk_bytes(size_t bytes) { return (bytes + 15) / 16 * 16; }

}  // namespace cuda
}  // namespace fusedattn
