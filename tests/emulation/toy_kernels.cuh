// Toy kernels for the emulator's self-tests: small, but shaped like real kernels. They compile
// unchanged with nvcc (tests/test_emulation.py builds them for sm_80 and sm_90 and checks the
// SASS) and, with FUSEDATTN_CUDA_EMULATION, as C++ for driver.cpp.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "common/cuda/ptx.cuh"
#include "common/cuda/runtime.cuh"

namespace toys {

using fusedattn::cuda::dynamic_shared_memory;
namespace ptx = fusedattn::cuda::ptx;

// sums[r] = the sum of row r of a rows x cols matrix with row stride `stride`, one block per row.
// The row is read in tiles of blockDim.x elements, each summed by a tree in shared memory
// (blockDim.x floats) that every thread then reads: barriers in two nested loops.
__global__ void __launch_bounds__(256) row_sum(const float* __restrict__ x, int cols, int stride,
                                               float* __restrict__ sums) {
  float* tile = dynamic_shared_memory<float>();
  const float* row = x + static_cast<size_t>(blockIdx.x) * stride;
  float total = 0.f;
  for (int c0 = 0; c0 < cols; c0 += blockDim.x) {
    __syncthreads();  // every thread has read the previous tile's sum
    const int c = c0 + static_cast<int>(threadIdx.x);
    tile[threadIdx.x] = c < cols ? row[c] : 0.f;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) tile[threadIdx.x] += tile[threadIdx.x + s];
      __syncthreads();
    }
    total += tile[0];
  }
  if (threadIdx.x == 0) sums[blockIdx.x] = total;
}

// Warp collectives on int data, one output element per thread (n = gridDim.x * blockDim.x):
struct WarpOpsOut {
  int* scan;         // inclusive prefix sum over the warp (__shfl_up_sync)
  int* total;        // the warp's sum, in every lane (__shfl_xor_sync butterfly)
  int* segment_max;  // the max over the lane's 8-lane segment (__shfl_down_sync, width 8)
  int* broadcast;    // lane 5 of the lane's 16-lane half (__shfl_sync, width 16)
  int* neighbour;    // lane ^ 1's value, exchanged through shared memory under __syncwarp
  unsigned* votes;   // per warp: __ballot_sync, __any_sync and __all_sync of x > 0
  int* block_total;  // per block: warp sums in shared memory, reduced by warp 0 (__shfl_down_sync)
};

__global__ void warp_ops(const int* x, WarpOpsOut out) {
  int* slots = dynamic_shared_memory<int>();  // [blockDim.x], then [blockDim.x / 32]
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  const int v = x[i];

  int scan = v;
  for (unsigned d = 1; d < 32; d <<= 1) {
    const int up = __shfl_up_sync(0xffffffffu, scan, d);
    if (lane >= d) scan += up;
  }
  out.scan[i] = scan;

  int total = v;
  for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
  out.total[i] = total;

  int segment_max = v;
  for (unsigned d = 4; d > 0; d >>= 1) {
    const int other = __shfl_down_sync(0xffffffffu, segment_max, d, 8);
    segment_max = other > segment_max ? other : segment_max;
  }
  out.segment_max[i] = __shfl_sync(0xffffffffu, segment_max, 0, 8);
  out.broadcast[i] = __shfl_sync(0xffffffffu, v, 5, 16);

  slots[threadIdx.x] = v;
  __syncwarp();
  out.neighbour[i] = slots[threadIdx.x ^ 1];

  const unsigned ballot = __ballot_sync(0xffffffffu, v > 0);
  const int any = __any_sync(0xffffffffu, v > 0), all = __all_sync(0xffffffffu, v > 0);
  const unsigned global_warp = blockIdx.x * (blockDim.x / 32) + warp;
  if (lane == 0) {
    out.votes[3 * global_warp] = ballot;
    out.votes[3 * global_warp + 1] = static_cast<unsigned>(any);
    out.votes[3 * global_warp + 2] = static_cast<unsigned>(all);
  }

  int* warp_sums = slots + blockDim.x;
  if (lane == 0) warp_sums[warp] = total;
  __syncthreads();
  if (warp == 0) {
    int sum = lane < blockDim.x / 32 ? warp_sums[lane] : 0;
    for (unsigned d = 16; d > 0; d >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, d);
    if (lane == 0) out.block_total[blockIdx.x] = sum;
  }
}

// out (cols x rows) = in (rows x cols) transposed, through a 32 x 33 float tile of shared memory
// per block; blocks of 32 x 8 threads, a 2-D grid of 32 x 32 tiles.
__global__ void transpose(const float* in, int rows, int cols, float* out) {
  // The padding column keeps the column reads free of bank conflicts.
  constexpr int kTile = 32, kStride = kTile + 1;
  float* tile = dynamic_shared_memory<float>();
  const int c0 = blockIdx.x * kTile, r0 = blockIdx.y * kTile;
  const int tx = static_cast<int>(threadIdx.x);
  for (int j = static_cast<int>(threadIdx.y); j < kTile; j += blockDim.y) {
    if (r0 + j < rows && c0 + tx < cols) {
      tile[j * kStride + tx] = in[static_cast<size_t>(r0 + j) * cols + c0 + tx];
    }
  }
  __syncthreads();
  for (int j = static_cast<int>(threadIdx.y); j < kTile; j += blockDim.y) {
    if (c0 + j < cols && r0 + tx < rows) {
      out[static_cast<size_t>(c0 + j) * rows + r0 + tx] = tile[tx * kStride + j];
    }
  }
}

// c (16 x 16 floats, row-major) = a (16 x 16) * b (16 x 16) on one warp, with T = __half or
// __nv_bfloat16: the operands are staged in shared memory, their fragments loaded with ldmatrix
// and multiplied by two m16n8k16 mmas (n = 0..7 and 8..15). kATransposed: `a` holds A^T
// (k-major), loaded with ldmatrix.trans; else A (m-major), loaded plainly. kBTransposed: `b`
// holds B^T (n-major), loaded plainly; else B (k-major), loaded with .trans.
template <typename T, bool kATransposed, bool kBTransposed>
__global__ void mma_16x16x16(const T* a, const T* b, float* c) {
  T* as = dynamic_shared_memory<T>();  // [16][16]
  T* bs = as + 256;                    // [16][16]
  for (int i = threadIdx.x; i < 256; i += 32) {
    as[i] = a[i];
    bs[i] = b[i];
  }
  __syncwarp();
  // Lane l addresses row l % 8 of 8 x 8 matrix l / 8 (16 bytes: 8 elements).
  const int lane = threadIdx.x % 32, matrix = lane / 8, row = lane % 8;
  // The four matrices of A's fragment are (rows, cols) = (0-7, 0-7), (8-15, 0-7), (0-7, 8-15),
  // (8-15, 8-15) of A: in A^T's memory the roles of rows and columns swap.
  uint32_t a_frag[4];
  if (kATransposed) {
    ptx::ldmatrix_trans(a_frag, as + ((matrix >> 1) * 8 + row) * 16 + (matrix & 1) * 8);
  } else {
    ptx::ldmatrix(a_frag, as + ((matrix & 1) * 8 + row) * 16 + (matrix >> 1) * 8);
  }
  // B's fragments, two registers per n-tile: (k, n) = (0-7, 0-7), (8-15, 0-7), (0-7, 8-15),
  // (8-15, 8-15).
  uint32_t b_frag[4];
  if (kBTransposed) {
    ptx::ldmatrix(b_frag, bs + ((matrix >> 1) * 8 + row) * 16 + (matrix & 1) * 8);
  } else {
    ptx::ldmatrix_trans(b_frag, bs + ((matrix & 1) * 8 + row) * 16 + (matrix >> 1) * 8);
  }
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

// c (16 x 8 floats, row-major) = a (16 x 8) * b (8 x 8) + c on one warp, one m16n8k8 mma.
// kTransposed false: `a` holds A (m-major), loaded with ldmatrix.x2, and `b` holds B (k-major),
// loaded with ldmatrix.x1.trans. kTransposed true: they hold A^T and B^T, loaded with
// ldmatrix.x2.trans and ldmatrix.x1.
template <typename T, bool kTransposed>
__global__ void mma_16x8x8(const T* a, const T* b, float* c) {
  T* as = dynamic_shared_memory<T>();  // 128 elements
  T* bs = as + 128;                    // 64 elements
  for (int i = threadIdx.x; i < 128; i += 32) as[i] = a[i];
  for (int i = threadIdx.x; i < 64; i += 32) bs[i] = b[i];
  __syncwarp();
  // Lanes 0-15 address the rows of A's two matrices ((m, k) = (0-7, 0-7), (8-15, 0-7)), lanes
  // 0-7 those of B's; the other lanes' addresses are unused.
  const int lane = threadIdx.x % 32, matrix = lane / 8 % 2, row = lane % 8;
  uint32_t a_frag[2], b_frag[1];
  if (kTransposed) {
    ptx::ldmatrix_trans(a_frag, as + row * 16 + matrix * 8);
    ptx::ldmatrix(b_frag, bs + row * 8);
  } else {
    ptx::ldmatrix(a_frag, as + (matrix * 8 + row) * 8);
    ptx::ldmatrix_trans(b_frag, bs + row * 8);
  }
  const int group = lane / 4, pair = 2 * (lane % 4);
  float acc[4], d[4];
  for (int i = 0; i < 4; ++i) acc[i] = c[(group + 8 * (i / 2)) * 8 + pair + (i & 1)];
  ptx::mma_m16n8k8<T>(d, a_frag, b_frag, acc);
  for (int i = 0; i < 4; ++i) c[(group + 8 * (i / 2)) * 8 + pair + (i & 1)] = d[i];
}

// out[i] = scale * in[i] + bias[i % 2] for n floats (n a multiple of 4), streamed through shared
// memory: blocks take tiles of 4 * blockDim.x floats in turn, each thread copying 16 bytes per
// tile with cp.async.cg (zero-filled past n) into one of two buffers while the block consumes the
// other; scale (4 bytes) and bias (8 bytes) arrive by cp.async.ca. A thread consumes a chunk
// another thread copied, so the barrier after the wait matters.
__global__ void scale_stream(const float* in, const float* scale, const float* bias, int n,
                             float* out) {
  float* buffers = dynamic_shared_memory<float>();  // [2][4 * blockDim.x], then scale, bias
  const int tile = 4 * static_cast<int>(blockDim.x);
  float* params = buffers + 2 * tile;  // [scale, pad, bias0, bias1]
  if (threadIdx.x == 0) {
    ptx::cp_async_ca<4>(params, scale);
    ptx::cp_async_ca<8>(params + 2, bias);
  }
  ptx::cp_async_wait_all();
  const int tiles = (n + tile - 1) / tile;
  const auto prefetch = [&](int t, float* buffer) {
    const int first = t * tile + 4 * static_cast<int>(threadIdx.x);
    // Past n: the src-size 0 form, which reads nothing and zero-fills.
    ptx::cp_async_cg(buffer + 4 * threadIdx.x, in + (first < n ? first : 0), first < n ? 16 : 0);
  };
  int t = blockIdx.x;
  if (t < tiles) prefetch(t, buffers);
  ptx::cp_async_commit_group();
  for (int k = 0; t < tiles; ++k, t += gridDim.x) {
    const int next = t + static_cast<int>(gridDim.x);
    if (next < tiles) prefetch(next, buffers + ((k + 1) & 1) * tile);
    ptx::cp_async_commit_group();
    ptx::cp_async_wait_group<1>();  // the current tile's group has landed
    __syncthreads();                // ... for every thread's copies
    const int chunk = (threadIdx.x + 32) % blockDim.x;
    const int first = t * tile + 4 * chunk;
    if (first < n) {
      const float4 v = *reinterpret_cast<const float4*>(buffers + (k & 1) * tile + 4 * chunk);
      const float4 r = {params[0] * v.x + params[2], params[0] * v.y + params[3],
                        params[0] * v.z + params[2], params[0] * v.w + params[3]};
      fusedattn::cuda::store_global_v4(reinterpret_cast<float4*>(out + first), r);
    }
    __syncthreads();  // the buffer is consumed before it is refilled
  }
  ptx::cp_async_wait_all();
}

// out[i] = in[i] + addend[i % 4], each block over `tiles` tiles of tile_floats floats (a multiple
// of 8): thread 0 fetches each tile with two bulk copies that complete on an mbarrier, and every
// thread waits on the phase's parity (alternating from tile to tile).
__global__ void bulk_add(const float* in, const float4* addend, int tiles, int tile_floats,
                         float* out) {
#if FUSEDATTN_PTX_HAS_BULK_COPY
  const float4 add = fusedattn::cuda::load_global_v4(addend);
  const float add_at[4] = {add.x, add.y, add.z, add.w};
  uint64_t* barrier = dynamic_shared_memory<uint64_t>();
  float* buffer = reinterpret_cast<float*>(barrier + 2);  // 16-byte aligned
  if (threadIdx.x == 0) ptx::mbarrier_init(barrier, 1);
  __syncthreads();
  for (int t = 0; t < tiles; ++t) {
    const size_t first = (static_cast<size_t>(blockIdx.x) * tiles + t) * tile_floats;
    if (threadIdx.x == 0) {
      ptx::fence_proxy_async_shared();  // the previous tile's reads before the copies' writes
      const uint32_t half_bytes = static_cast<uint32_t>(tile_floats) * 2;
      ptx::mbarrier_arrive_expect_tx(barrier, 2 * half_bytes);
      ptx::bulk_copy_global_to_shared(buffer, in + first, half_bytes, barrier);
      ptx::bulk_copy_global_to_shared(buffer + tile_floats / 2, in + first + tile_floats / 2,
                                      half_bytes, barrier);
    }
    ptx::mbarrier_wait_parity(barrier, t & 1);
    for (int i = threadIdx.x; i < tile_floats; i += blockDim.x) {
      out[first + i] = buffer[i] + add_at[i % 4];
    }
    __syncthreads();  // the tile is consumed before the next copies overwrite it
  }
#endif
}

// Atomics from every thread of every block over n values: counts[v % bins] (atomicAdd int),
// the max and min (atomicMax / atomicMin), sums in float and double (atomicAdd), and per bin the
// first claimant's index (atomicCAS on -1) and some claimant's index (atomicExch).
struct HistogramOut {
  int* counts;
  unsigned* max_value;
  int* min_value;
  float* sum;
  double* sum_double;
  int* first_claim;
  int* any_claim;
};

__global__ void histogram(const int* values, int n, int bins, HistogramOut out) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const int v = values[i];
    atomicAdd(&out.counts[v % bins], 1);
    atomicMax(out.max_value, static_cast<unsigned>(v));
    atomicMin(out.min_value, v);
    atomicAdd(out.sum, 0.5f);
    atomicAdd(out.sum_double, static_cast<double>(v));
    atomicCAS(&out.first_claim[v % bins], -1, i);
    atomicExch(&out.any_claim[v % bins], i);
  }
}

// out[i] = (i + 1) % blockDim.x, passed through shared memory: thread i writes slot i, reads slot
// i + 1. Launched with more shared memory than the 48 KB a block gets without the opt-in.
__global__ void rotate_large_shared_memory(float* out) {
  float* slots = dynamic_shared_memory<float>();
  slots[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

// order[k] = the k-th block to run (each block's thread 0 takes the next slot).
__global__ void record_block_order(int* next_slot, int* order) {
  if (threadIdx.x == 0) order[atomicAdd(next_slot, 1)] = blockIdx.x;
}

// The emulation's speed: `tiles` iterations of a tile loop with a barrier each, the same shape
// as row_sum's outer loop.
__global__ void barrier_loop(int tiles, float* out) {
  float* tile = dynamic_shared_memory<float>();
  float total = 0.f;
  for (int t = 0; t < tiles; ++t) {
    tile[threadIdx.x] = static_cast<float>(t + threadIdx.x);
    __syncthreads();
    total += tile[(threadIdx.x + 1) % blockDim.x];
    __syncthreads();
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = total;
}

}  // namespace toys
