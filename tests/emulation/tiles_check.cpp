// csrc/common/cuda/tile.cuh in the CPU emulation of the CUDA execution model: one warp's
// 16 x 8 x 16 product in every orientation of A and B, for float (FMA) and for bf16 / f16
// (ldmatrix + mma.sync, whose emulation follows the PTX ISA's fragment layouts), against a host
// product; the async tile copy with its zero-filled edges; the span copy; the tile store.
// Built and run by tests/test_tiles.py. Exit 0 when every check holds.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/cuda/tile.cuh"

namespace fc = fusedattn::cuda;

namespace {

constexpr int kLd = 24;  // 16 columns + 8 elements: rows stay 16-byte aligned for 16-bit types

template <typename T, typename AO, typename BO>
__global__ void product_kernel(const T* a_global, const T* b_global, float* d_out) {
  T* a = fc::dynamic_shared_memory<T>();
  T* b = a + 16 * kLd;
  for (int i = threadIdx.x; i < 16 * kLd; i += 32) {
    a[i] = a_global[i];
    b[i] = b_global[i];
  }
  __syncwarp();
  float d[4] = {0.f, 0.f, 0.f, 0.f};
  fc::warp_mma_16x8x16<T, AO, BO>(d, a, kLd, 0, 0, b, kLd, 0, 0);
  const fc::Lane l = fc::Lane::of_this_thread();
  d_out[l.group * 8 + 2 * l.quad] = d[0];
  d_out[l.group * 8 + 2 * l.quad + 1] = d[1];
  d_out[(l.group + 8) * 8 + 2 * l.quad] = d[2];
  d_out[(l.group + 8) * 8 + 2 * l.quad + 1] = d[3];
}

template <typename T> T store_as(float x) { return fc::from_float<T>(x); }
template <> float store_as<float>(float x) { return x; }

template <typename T, typename AO, typename BO>
int product_case(const char* name) {
  // Multiples of 1/4 in [-2, 2]: exact in every type, products and their sums exact in float.
  std::vector<T> a(16 * kLd), b(16 * kLd);
  std::vector<float> av(16 * kLd), bv(16 * kLd);
  for (int i = 0; i < 16 * kLd; ++i) {
    av[i] = static_cast<float>((i * 7 + 3) % 17 - 8) / 4.f;
    bv[i] = static_cast<float>((i * 5 + 1) % 13 - 6) / 4.f;
    a[i] = store_as<T>(av[i]);
    b[i] = store_as<T>(bv[i]);
  }
  std::vector<float> d(128, -1.f);
  fc::launch(product_kernel<T, AO, BO>, dim3(1), dim3(32), 2 * 16 * kLd * sizeof(T), nullptr,
             a.data(), b.data(), d.data());
  int bad = 0;
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 8; ++c) {
      float want = 0.f;
      for (int k = 0; k < 16; ++k) {
        want += av[AO::offset(r, k, kLd)] * bv[BO::offset(k, c, kLd)];
      }
      if (d[r * 8 + c] != want && bad++ < 3) {
        std::printf("%s: d[%d][%d] = %g, want %g\n", name, r, c, d[r * 8 + c], want);
      }
    }
  }
  std::printf("%s: %s\n", name, bad ? "FAILED" : "ok");
  return bad != 0;
}

// A 5 x 20 corner of a 7 x 22 matrix (rows 23 elements apart) copied into an 8 x 24 tile
// ([8][kTileLd]): the rest of the tile zero; then stored back into a fresh matrix.
constexpr int kTileLd = 32;

__global__ void copy_kernel(const __nv_bfloat16* src, __nv_bfloat16* back,
                            __nv_bfloat16* span_out) {
  __nv_bfloat16* tile = fc::dynamic_shared_memory<__nv_bfloat16>();
  __nv_bfloat16* span = tile + 8 * kTileLd;
  fc::copy_tile_async<__nv_bfloat16, 8, 24, kTileLd, 64>(tile, src, 24, 5, 20);
  fc::copy_span_async<__nv_bfloat16, 64, 48>(span, src, 40);  // 5 of the span's 6 chunks
  fusedattn::cuda::ptx::cp_async_commit_group();
  fusedattn::cuda::ptx::cp_async_wait_group<0>();
  __syncthreads();
  fc::store_tile<__nv_bfloat16, 8, 24, kTileLd, 64, true>(back, tile, 24, 1, 8, 24);
  for (int i = threadIdx.x; i < 48; i += 64) span_out[i] = span[i];
}

int copy_case() {
  std::vector<__nv_bfloat16> src(7 * 24), back(8 * 24), span(48);
  for (int i = 0; i < 7 * 24; ++i) src[i] = __float2bfloat16_rn(static_cast<float>(i % 50 + 1));
  fc::launch(copy_kernel, dim3(1), dim3(64), (8 * kTileLd + 48) * sizeof(__nv_bfloat16), nullptr,
             src.data(), back.data(), span.data());
  int bad = 0;
  for (int r = 0; r < 8; ++r) {
    for (int c = 0; c < 24; ++c) {
      const float want = (r < 5 && c < 20) ? static_cast<float>((r * 24 + c) % 50 + 1) : 0.f;
      bad += __bfloat162float(back[r * 24 + c]) != want;
    }
  }
  for (int i = 0; i < 48; ++i) {
    bad += __bfloat162float(span[i]) != (i < 40 ? static_cast<float>(i % 50 + 1) : 0.f);
  }
  std::printf("copies: %s\n", bad ? "FAILED" : "ok");
  return bad != 0;
}

}  // namespace

int main() {
  int failures = 0;
  failures += product_case<float, fc::RowMajor, fc::RowMajor>("float A B");
  failures += product_case<float, fc::ColMajor, fc::ColMajor>("float A^T B^T");
  failures += product_case<__nv_bfloat16, fc::RowMajor, fc::RowMajor>("bf16 A B");
  failures += product_case<__nv_bfloat16, fc::RowMajor, fc::ColMajor>("bf16 A B^T");
  failures += product_case<__nv_bfloat16, fc::ColMajor, fc::RowMajor>("bf16 A^T B");
  failures += product_case<__nv_bfloat16, fc::ColMajor, fc::ColMajor>("bf16 A^T B^T");
  failures += product_case<__half, fc::ColMajor, fc::RowMajor>("f16 A^T B");
  failures += copy_case();
  return failures != 0;
}
