// Tiles in shared memory for memory-bound kernels, op-neutral: asynchronous copies of 2-D global
// tiles into padded shared tiles (16-byte cp.async chunks, zero-filled past the bounds), the
// element-by-element fallback for any strides, 16-byte stores of a shared tile back to global
// memory, and one warp's 16 x 8 x 16 product of two shared tiles on tensor cores (16-bit
// inputs: ldmatrix + mma.sync) or on the FMA units (float inputs) with the same fragment
// layout, so that a kernel is written once for every dtype.
//
// A shared tile is row-major: element (r, c) at tile[r * ld + c], ld a multiple of 16 bytes so
// that every row is 16-byte aligned (ldmatrix, cp.async) and, padded by 16 bytes past a
// multiple of 128, consecutive rows fall in different shared-memory banks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "convert.cuh"
#include "layout.h"
#include "ptx.cuh"
#include "runtime.cuh"

namespace fusedattn {
namespace cuda {

// Elements of T in one 16-byte chunk.
template <typename T>
constexpr int kChunk = 16 / static_cast<int>(sizeof(T));


__device__ __forceinline__ int64_t clamp_count(int64_t n, int64_t most) {
  return n < 0 ? 0 : (n < most ? n : most);
}

// A count left to a kernel's loop, as the 32-bit number TileCopy takes: from `n`, clamped to
// [0, 2^30] (more than any tile; the loop lowers it by a tile at a time and may go negative).
__device__ __forceinline__ int loop_count(int64_t n) {
  return static_cast<int>(clamp_count(n, int64_t{1} << 30));
}

// Stores store(row, col, load(row, col)) for every element of a rows x cols row-major range,
// the block's threads striding over it in order: one division per thread, not one per element,
// and each thread's next kUnroll loads issued before any of their stores, so that they are in
// flight together (a store between two loads would keep the second behind the first: the
// compiler cannot tell that they do not alias).
template <int kUnroll, typename Load, typename Store>
__device__ __forceinline__ void for_each_element(int64_t rows, int64_t cols, Load&& load,
                                                 Store&& store) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t step = blockDim.x, step_rows = step / cols, step_cols = step % cols;
  int64_t row = threadIdx.x / cols, col = threadIdx.x % cols;
  auto next = [&](int64_t& r, int64_t& c) {
    r += step_rows;
    c += step_cols;
    if (c >= cols) {
      c -= cols;
      ++r;
    }
  };
  while (row < rows) {
    decltype(load(row, col)) value[kUnroll] = {};
    int64_t r = row, c = col;  // (the stores walk the same elements again)
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (row < rows) value[u] = load(row, col);
      next(row, col);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (r < rows) store(r, c, value[u]);
      next(r, c);
    }
  }
}

// The copies below run in the hot loops of streaming kernels, so their instruction count per
// 16-byte chunk is what bounds them (the SASS report counts it): a thread's chunks are a
// compile-time number of unrolled steps (kThreads apart), and what does not change from tile
// to tile is computed once per block.

// The cp.async copies of [kRows][kCols] tiles of a global matrix whose rows are `row_stride`
// elements apart and whose columns are contiguous, each row's first element 16-byte aligned,
// into shared tiles dst[kRows][kLd]: a cursor a block makes once at its first tile and moves
// from tile to tile (a streaming kernel's ring). Each thread keeps a pointer and a shared
// offset per chunk it copies, so that issuing a tile costs a few 32-bit instructions per
// 16-byte chunk, and one path serves whole and edge tiles alike: only rows_left rows and
// cols_left columns exist (fewer at the matrix's edges), the rest of the tile is zero-filled by
// the same copies (src-size 0 reads nothing, so a chunk past the matrix names no valid
// address). Every thread of a block of kThreads issues; committing and waiting are the
// caller's.
template <typename T, int kRows, int kCols, int kLd, int kThreads>
class TileCopy {
  static_assert(kCols % kChunk<T> == 0 && kLd % kChunk<T> == 0, "16-byte chunks");
  static constexpr int kChunksPerRow = kCols / kChunk<T>;
  static constexpr int kChunks = kRows * kChunksPerRow;
  static constexpr int kSteps = (kChunks + kThreads - 1) / kThreads;
  const T* src_[kSteps];
  int row_[kSteps], col_[kSteps];

  __device__ __forceinline__ static bool has(int step) {
    return kChunks % kThreads == 0 || threadIdx.x + step * kThreads < kChunks;
  }

 public:
  // The cursor at the tile whose element (0, 0) is origin.
  __device__ __forceinline__ TileCopy(const T* origin, int64_t row_stride) {
#pragma unroll
    for (int step = 0; step < kSteps; ++step) {
      const int i = threadIdx.x + step * kThreads;
      row_[step] = i / kChunksPerRow;
      col_[step] = i % kChunksPerRow * kChunk<T>;
      src_[step] = origin + row_[step] * row_stride + col_[step];
    }
  }

  // Moves the cursor by `elements` (the next tile's origin minus this one's).
  __device__ __forceinline__ void advance(int64_t elements) {
#pragma unroll
    for (int step = 0; step < kSteps; ++step) src_[step] += elements;
  }

  // Issues the copies of the tile at the cursor (32-bit counts, as a kernel's loop keeps them:
  // negative is none, more than the tile is all of it).
  __device__ __forceinline__ void operator()(T* dst, int rows_left, int cols_left) const {
    const int rows = rows_left < kRows ? rows_left : kRows;
    const int cols = cols_left < kCols ? cols_left : kCols;
#pragma unroll
    for (int step = 0; step < kSteps; ++step) {
      if (!has(step)) break;
      const int left = cols - col_[step];
      const int valid = row_[step] < rows ? (left < 0 ? 0 : (left < kChunk<T> ? left : kChunk<T>))
                                          : 0;
      ptx::cp_async_cg(dst + row_[step] * kLd + col_[step], src_[step],
                       valid * static_cast<int>(sizeof(T)));
    }
  }

  // Issues the copies of a tile known to be whole (a scratch padded to whole tiles).
  __device__ __forceinline__ void whole(T* dst) const {
#pragma unroll
    for (int step = 0; step < kSteps; ++step) {
      if (!has(step)) break;
      ptx::cp_async_cg(dst + row_[step] * kLd + col_[step], src_[step], 16);
    }
  }
};

// One tile's copies, for a tile a block copies once.
template <typename T, int kRows, int kCols, int kLd, int kThreads>
__device__ __forceinline__ void copy_tile_async(T* dst, const T* src, int64_t row_stride,
                                                int64_t rows_left, int64_t cols_left) {
  TileCopy<T, kRows, kCols, kLd, kThreads>(src, row_stride)(
      dst, static_cast<int>(clamp_count(rows_left, kRows)),
      static_cast<int>(clamp_count(cols_left, kCols)));
}

// The same tile from a matrix with any strides, element by element (synchronous loads): the
// fallback where rows are not 16-byte aligned.
template <typename T, int kRows, int kCols, int kLd, int kThreads>
__device__ __forceinline__ void copy_tile_scalar(T* dst, const T* src, int64_t row_stride,
                                                 int64_t col_stride, int64_t rows_left,
                                                 int64_t cols_left) {
  for (int i = threadIdx.x; i < kRows * kCols; i += kThreads) {
    const int r = i / kCols, c = i % kCols;
    dst[r * kLd + c] = (r < rows_left && c < cols_left) ? src[r * row_stride + c * col_stride]
                                                        : from_float<T>(0.f);
  }
}

// Issues the cp.async copies of `count` contiguous elements, whole 16-byte chunks from a
// 16-byte aligned src, into dst, and zero-fills dst up to kCapacity elements (a multiple of 16
// bytes). A streaming kernel issues this in its main loop, so a chunk costs a compare and its
// copy (a chunk past `count` names an address it does not read, as in TileCopy).
template <typename T, int kThreads, int kCapacity>
__device__ __forceinline__ void copy_span_async(T* dst, const T* src, int count) {
  static_assert(kCapacity % kChunk<T> == 0, "16-byte chunks");
  constexpr int kChunks = kCapacity / kChunk<T>;
  constexpr int kSteps = (kChunks + kThreads - 1) / kThreads;
#pragma unroll
  for (int step = 0; step < kSteps; ++step) {
    const int c = (threadIdx.x + step * kThreads) * kChunk<T>;
    if (kChunks % kThreads != 0 && c >= kCapacity) break;
    ptx::cp_async_cg_or_zero(dst + c, src + c, c < count);
  }
}

// Issues the cp.async copies of `count` contiguous elements, whole 16-byte chunks from a
// 16-byte aligned src, into dst (and nothing past them): a loop, for a span a block copies once.
template <typename T, int kThreads>
__device__ __forceinline__ void copy_chunks_async(T* dst, const T* src, int count) {
  for (int c = threadIdx.x * kChunk<T>; c < count; c += kThreads * kChunk<T>) {
    ptx::cp_async_cg(dst + c, src + c, 16);
  }
}

// Stores the shared tile src[kRows][kLd] (kCols columns) to a global matrix, rows_left x
// cols_left of it. kAligned: rows `row_stride` elements apart, each 16-byte aligned, columns
// contiguous, and cols_left whole 16-byte chunks (or >= kCols): 16-byte stores only. Else
// element by element with any strides. The caller synchronizes before (the tile is written)
// as needed.
template <typename T, int kRows, int kCols, int kLd, int kThreads, bool kAligned>
__device__ __forceinline__ void store_tile(T* dst, const T* src, int64_t row_stride,
                                           int64_t col_stride, int64_t rows_left,
                                           int64_t cols_left) {
  if constexpr (kAligned) {
    constexpr int kChunksPerRow = kCols / kChunk<T>;
    constexpr int kChunks = kRows * kChunksPerRow;
    constexpr int kSteps = (kChunks + kThreads - 1) / kThreads;
    const bool whole = rows_left >= kRows && cols_left >= kCols;
#pragma unroll
    for (int step = 0; step < kSteps; ++step) {
      const int i = threadIdx.x + step * kThreads;
      if (kChunks % kThreads != 0 && i >= kChunks) break;
      const int r = i / kChunksPerRow, c = i % kChunksPerRow * kChunk<T>;
      if (whole || (r < rows_left && c < cols_left)) {
        store_global_v4(reinterpret_cast<uint4*>(dst + r * row_stride + c),
                        *reinterpret_cast<const uint4*>(src + r * kLd + c));
      }
    }
  } else {
    for (int i = threadIdx.x; i < kRows * kCols; i += kThreads) {
      const int r = i / kCols, c = i % kCols;
      if (r < rows_left && c < cols_left) dst[r * row_stride + c * col_stride] = src[r * kLd + c];
    }
  }
}

// Stores `count` (whole 16-byte chunks, at most kCapacity) elements of the shared span src to
// contiguous global memory dst, 16-byte aligned: 16-byte stores only.
template <typename T, int kThreads, int kCapacity>
__device__ __forceinline__ void store_span(T* dst, const T* src, int64_t count) {
  constexpr int kChunks = (kCapacity + kChunk<T> - 1) / kChunk<T>;
  constexpr int kSteps = (kChunks + kThreads - 1) / kThreads;
#pragma unroll
  for (int step = 0; step < kSteps; ++step) {
    const int c = (threadIdx.x + step * kThreads) * kChunk<T>;
    if (c >= count) break;
    store_global_v4(reinterpret_cast<uint4*>(dst + c), *reinterpret_cast<const uint4*>(src + c));
  }
}

// How a warp's operand sits in a shared tile: element (row, col) of the operand at
// tile[row * ld + col] (kTransposed false) or tile[col * ld + row] (kTransposed true). With
// kAligned, ld keeps every row 16-byte aligned and ldmatrix loads the fragments; without, they
// are gathered element by element (a tile of rows of any length).
template <bool kTransposed, bool kAligned = true>
struct Orientation {
  static constexpr bool transposed = kTransposed;
  static constexpr bool aligned = kAligned;
  __device__ __forceinline__ static int offset(int row, int col, int ld) {
    return kTransposed ? col * ld + row : row * ld + col;
  }
};
using RowMajor = Orientation<false>;
using ColMajor = Orientation<true>;
using RowMajorGathered = Orientation<false, false>;
using ColMajorGathered = Orientation<true, false>;

namespace detail {
// Two 16-bit values as the 32-bit fragment register mma takes (the lower half first).
template <typename T>
__device__ __forceinline__ uint32_t pack2(T lo, T hi) {
  uint16_t l, h;
  memcpy(&l, &lo, 2);
  memcpy(&h, &hi, 2);
  return static_cast<uint32_t>(l) | static_cast<uint32_t>(h) << 16;
}
}  // namespace detail

// The lane's (groupID, threadID_in_group) of the mma fragment layouts (PTX ISA, "Matrix
// Fragments for mma.m16n8k16"): lane = 4 * group + quad.
struct Lane {
  int group, quad;
  __device__ __forceinline__ static Lane of_this_thread() {
    const int lane = threadIdx.x % 32;
    return {lane / 4, lane % 4};
  }
};

// d += A * B for one warp: A the 16 x 16 operand at (a_row, a_col) of tile `a` (orientation
// AOrient), B the 16 x 8 operand at (b_row, b_col) of tile `b`, d the lane's four float
// accumulators of the 16 x 8 result in the mma layout: d[0], d[1] at (group, 2 quad + {0, 1}),
// d[2], d[3] at (group + 8, 2 quad + {0, 1}). 16-bit T: ldmatrix (tiles 16-byte aligned rows)
// and mma.sync.m16n8k16; float: FMAs over the same elements. Every lane of the warp calls it.
// A gathered A (or a float one) reads its columns from a_col_end on as zeros: a tile whose rows
// run on into the next row's elements.
template <typename T, typename AOrient, typename BOrient>
__device__ __forceinline__ void warp_mma_16x8x16(float (&d)[4], const T* a, int lda, int a_row,
                                                 int a_col, const T* b, int ldb, int b_row,
                                                 int b_col, int a_col_end = 1 << 30) {
  if constexpr (std::is_same<T, float>::value) {
    const Lane l = Lane::of_this_thread();
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      const bool in = a_col + k < a_col_end;
      const float a0 = in ? a[AOrient::offset(a_row + l.group, a_col + k, lda)] : 0.f;
      const float a1 = in ? a[AOrient::offset(a_row + l.group + 8, a_col + k, lda)] : 0.f;
      const float b0 = b[BOrient::offset(b_row + k, b_col + 2 * l.quad, ldb)];
      const float b1 = b[BOrient::offset(b_row + k, b_col + 2 * l.quad + 1, ldb)];
      d[0] = fmaf(a0, b0, d[0]);
      d[1] = fmaf(a0, b1, d[1]);
      d[2] = fmaf(a1, b0, d[2]);
      d[3] = fmaf(a1, b1, d[3]);
    }
  } else {
    const int lane = threadIdx.x % 32, m = lane / 8, r = lane % 8;
    // Lane l passes the address of row l % 8 of matrix l / 8 as stored: for a transposed
    // operand the stored rows are its columns, and ldmatrix.trans transposes them back.
    uint32_t fa[4];
    const int a_rows = a_row + 8 * (m & 1), a_cols = a_col + 8 * (m >> 1);
    if constexpr (!AOrient::aligned) {
      // The PTX fragment layout: a0a1 (group, 2 quad + {0, 1}), a2a3 (group + 8, ...),
      // a4a5 (group, 2 quad + 8 + {0, 1}), a6a7 (group + 8, ...).
      const Lane l = Lane::of_this_thread();
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int row = a_row + l.group + 8 * (i & 1), col = a_col + 2 * l.quad + 8 * (i >> 1);
        const T zero = from_float<T>(0.f);
        fa[i] = detail::pack2(col < a_col_end ? a[AOrient::offset(row, col, lda)] : zero,
                              col + 1 < a_col_end ? a[AOrient::offset(row, col + 1, lda)] : zero);
      }
    } else if constexpr (AOrient::transposed) {
      ptx::ldmatrix_trans<4>(fa, a + (a_cols + r) * lda + a_rows);
    } else {
      ptx::ldmatrix<4>(fa, a + (a_rows + r) * lda + a_cols);
    }
    // B (16 x 8): matrices (rows 0-7) and (rows 8-15); the col layout wants a lane's two
    // consecutive rows of one column, so a row-major B loads transposed. Lanes 16-31 repeat
    // lanes 0-15's addresses (ldmatrix.x2 ignores them).
    uint32_t fb[2];
    const int b_rows = b_row + 8 * (m & 1);
    if constexpr (BOrient::transposed) {
      ptx::ldmatrix<2>(fb, b + (b_col + r) * ldb + b_rows);
    } else {
      ptx::ldmatrix_trans<2>(fb, b + (b_rows + r) * ldb + b_col);
    }
    ptx::mma_m16n8k16<T>(d, fa, fb, d);
  }
}

}  // namespace cuda
}  // namespace fusedattn
