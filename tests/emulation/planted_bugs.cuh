// Kernels with planted bugs that the emulation must report. Each bug's line carries a
// "PLANTED: <case>" marker: tests/test_emulation.py expects the report to name that file:line.
#pragma once

#include "toy_kernels.cuh"

namespace planted {

using fusedattn::cuda::dynamic_shared_memory;
namespace ptx = fusedattn::cuda::ptx;

// toys::row_sum without the barrier at the top of the tile loop: thread 0 overwrites tile[0]
// with the next tile while other threads still read the previous tile's sum (ThreadSanitizer).
__global__ void row_sum_missing_barrier(const float* x, int cols, int stride, float* sums) {
  float* tile = dynamic_shared_memory<float>();
  const float* row = x + static_cast<size_t>(blockIdx.x) * stride;
  float total = 0.f;
  for (int c0 = 0; c0 < cols; c0 += blockDim.x) {
    const int c = c0 + static_cast<int>(threadIdx.x);
    tile[threadIdx.x] = c < cols ? row[c] : 0.f;  // PLANTED: missing_barrier
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) tile[threadIdx.x] += tile[threadIdx.x + s];
      __syncthreads();
    }
    total += tile[0];
  }
  if (threadIdx.x == 0) sums[blockIdx.x] = total;
}

// toys::row_sum with an off-by-one tile bound: reads one element past each row, into the next
// row's padding (AddressSanitizer, with the padding poisoned).
__global__ void row_sum_global_overread(const float* x, int cols, int stride, float* sums) {
  float* tile = dynamic_shared_memory<float>();
  const float* row = x + static_cast<size_t>(blockIdx.x) * stride;
  float total = 0.f;
  for (int c0 = 0; c0 < cols; c0 += blockDim.x) {
    __syncthreads();
    const int c = c0 + static_cast<int>(threadIdx.x);
    tile[threadIdx.x] = c <= cols ? row[c] : 0.f;  // PLANTED: global_overread
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) tile[threadIdx.x] += tile[threadIdx.x + s];
      __syncthreads();
    }
    total += tile[0];
  }
  if (threadIdx.x == 0) sums[blockIdx.x] = total;
}

// toys::row_sum with an off-by-one in the tree: thread s reads tile[2 s], one past the shared
// memory at the first level (AddressSanitizer).
__global__ void row_sum_shared_overread(const float* x, int cols, int stride, float* sums) {
  float* tile = dynamic_shared_memory<float>();
  const float* row = x + static_cast<size_t>(blockIdx.x) * stride;
  float total = 0.f;
  for (int c0 = 0; c0 < cols; c0 += blockDim.x) {
    __syncthreads();
    const int c = c0 + static_cast<int>(threadIdx.x);
    tile[threadIdx.x] = c < cols ? row[c] : 0.f;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x <= s) tile[threadIdx.x] += tile[threadIdx.x + s];  // PLANTED: shared_overread
      __syncthreads();
    }
    total += tile[0];
  }
  if (threadIdx.x == 0) sums[blockIdx.x] = total;
}

// toys::row_sum that forgets to zero the tail of the last tile: the tree sums shared memory
// nobody wrote, NaN in the emulation.
__global__ void row_sum_uninitialized_shared(const float* x, int cols, int stride, float* sums) {
  float* tile = dynamic_shared_memory<float>();
  const float* row = x + static_cast<size_t>(blockIdx.x) * stride;
  float total = 0.f;
  for (int c0 = 0; c0 < cols; c0 += blockDim.x) {
    __syncthreads();
    const int c = c0 + static_cast<int>(threadIdx.x);
    if (c < cols) tile[threadIdx.x] = row[c];  // PLANTED: uninitialized_shared
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) tile[threadIdx.x] += tile[threadIdx.x + s];
      __syncthreads();
    }
    total += tile[0];
  }
  if (threadIdx.x == 0) sums[blockIdx.x] = total;
}

// Lanes exchange values through shared memory without __syncwarp: lanes are independent
// threads, so the read races with the neighbour's write (ThreadSanitizer).
__global__ void intra_warp_race(const int* x, int* out) {
  int* slots = dynamic_shared_memory<int>();
  slots[threadIdx.x] = x[threadIdx.x];
  out[threadIdx.x] = slots[threadIdx.x ^ 1];  // PLANTED: intra_warp_race
}

// Neighbours exchange through shared memory twice with one __syncwarp between the rounds: the
// second round's write races with the neighbour's first-round read (ThreadSanitizer).
__global__ void warp_exchange_missing_syncwarp(const int* x, int* out) {
  int* slots = dynamic_shared_memory<int>();
  slots[threadIdx.x] = x[threadIdx.x];
  __syncwarp();
  const int neighbour = slots[threadIdx.x ^ 1];
  slots[threadIdx.x] = neighbour + 1;  // PLANTED: warp_exchange_missing_syncwarp
  __syncwarp();
  out[threadIdx.x] = slots[threadIdx.x ^ 1];
}

// Every block's thread 0 writes the same element, without atomics (ThreadSanitizer: blocks are
// unordered).
__global__ void two_block_race(int* out) {
  if (threadIdx.x == 0) *out = static_cast<int>(blockIdx.x);  // PLANTED: two_block_race
}

// The first warp waits at one __syncthreads, the others at another.
__global__ void divergent_barrier(float* out) {
  if (threadIdx.x < 32) {
    __syncthreads();
  } else {
    __syncthreads();  // PLANTED: divergent_barrier
  }
  out[threadIdx.x] = 1.f;
}

// Threads past 64 return early; the others wait at a barrier they never reach.
__global__ void barrier_after_exit(float* out) {
  if (threadIdx.x >= 64) return;
  __syncthreads();  // PLANTED: barrier_after_exit
  out[threadIdx.x] = 1.f;
}

// Half the warp returns, then the other half shuffles with a full mask.
__global__ void shuffle_exited_lanes(int* out) {
  const int lane = threadIdx.x % 32;
  if (lane >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, lane, 1);  // PLANTED: shuffle_exited_lanes
}

// Lanes 0-15 wait at __syncwarp for lanes 16-31, which wait at __syncthreads for them.
__global__ void deadlock(int* out) {
  if (threadIdx.x % 32 < 16) {
    __syncwarp();  // PLANTED: deadlock
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

// Half the warp shuffles while the other half votes, under the same full mask.
__global__ void mismatched_warp_ops(int* out) {
  const int lane = threadIdx.x % 32;
  if (lane < 16) {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, lane, 1);
  } else {
    const unsigned votes = __ballot_sync(0xffffffffu, lane > 20);  // PLANTED: mismatched_warp_ops
    out[threadIdx.x] = static_cast<int>(votes);
  }
}

// Lanes 0-15 shuffle among themselves but read lanes 16-31.
__global__ void shuffle_source_outside_mask(int* out) {
  constexpr unsigned kLowerHalf = 0x0000ffffu;
  const int lane = threadIdx.x % 32;
  if (lane < 16) {
    int v = __shfl_sync(kLowerHalf, lane, lane + 16);  // PLANTED: shuffle_source_outside_mask
    out[threadIdx.x] = v;
  }
}

// A 16-byte load from an address 4 bytes past a 16-byte boundary.
__global__ void misaligned_vector_load(const float* x, float* out) {
  const auto* unaligned = reinterpret_cast<const float4*>(x + 1);
  const float4 v = fusedattn::cuda::load_global_v4(unaligned);  // PLANTED: misaligned_vector_load
  out[threadIdx.x] = v.x;
}

// toys::scale_stream consuming each tile before waiting for its copies.
__global__ void scale_stream_early_read(const float* in, const float* scale, const float* bias,
                                        int n, float* out) {
  float* buffers = dynamic_shared_memory<float>();
  const int tile = 4 * static_cast<int>(blockDim.x);
  float* params = buffers + 2 * tile;
  if (threadIdx.x == 0) {
    ptx::cp_async_ca<4>(params, scale);
    ptx::cp_async_ca<8>(params + 2, bias);
  }
  ptx::cp_async_wait_all();
  const int tiles = (n + tile - 1) / tile;
  const auto prefetch = [&](int t, float* buffer) {
    const int first = t * tile + 4 * static_cast<int>(threadIdx.x);
    ptx::cp_async_cg(buffer + 4 * threadIdx.x, in + (first < n ? first : 0), first < n ? 16 : 0);
  };
  int t = blockIdx.x;
  if (t < tiles) prefetch(t, buffers);
  ptx::cp_async_commit_group();
  for (int k = 0; t < tiles; ++k, t += gridDim.x) {
    const int next = t + static_cast<int>(gridDim.x);
    if (next < tiles) prefetch(next, buffers + ((k + 1) & 1) * tile);
    ptx::cp_async_commit_group();
    __syncthreads();
    const int chunk = (threadIdx.x + 32) % blockDim.x;
    const int first = t * tile + 4 * chunk;
    if (first < n) {
      const float* copied = buffers + (k & 1) * tile + 4 * chunk;
      const float4 v = *reinterpret_cast<const float4*>(copied);  // PLANTED: cp_async_early_read
      const float4 r = {params[0] * v.x + params[2], params[0] * v.y + params[3],
                        params[0] * v.z + params[2], params[0] * v.w + params[3]};
      fusedattn::cuda::store_global_v4(reinterpret_cast<float4*>(out + first), r);
    }
    ptx::cp_async_wait_group<1>();
    __syncthreads();
  }
  ptx::cp_async_wait_all();
}

// toys::mma_16x16x16 (A m-major, B k-major) with A's ldmatrix rows taken from the wrong lanes:
// matrices 1 and 2 swap, so the mma multiplies a scrambled A.
template <typename T>
__global__ void mma_lane_mapping(const T* a, const T* b, float* c) {
  T* as = dynamic_shared_memory<T>();
  T* bs = as + 256;
  for (int i = threadIdx.x; i < 256; i += 32) {
    as[i] = a[i];
    bs[i] = b[i];
  }
  __syncwarp();
  const int lane = threadIdx.x % 32, matrix = lane / 8, row = lane % 8;
  uint32_t a_frag[4], b_frag[4];
  const int a_row = (matrix >> 1) * 8 + row;  // PLANTED: mma_lane_mapping
  ptx::ldmatrix(a_frag, as + a_row * 16 + (matrix & 1) * 8);
  ptx::ldmatrix_trans(b_frag, bs + ((matrix & 1) * 8 + row) * 16 + (matrix >> 1) * 8);
  const int group = lane / 4, pair = 2 * (lane % 4);
  for (int n_tile = 0; n_tile < 2; ++n_tile) {
    const uint32_t b_tile[2] = {b_frag[2 * n_tile], b_frag[2 * n_tile + 1]};
    const float zero[4] = {0.f, 0.f, 0.f, 0.f};
    float d[4];
    ptx::mma_m16n8k16<T>(d, a_frag, b_tile, zero);
    for (int i = 0; i < 4; ++i) {
      c[(group + 8 * (i / 2)) * 16 + n_tile * 8 + pair + (i & 1)] = d[i];
    }
  }
}

}  // namespace planted
