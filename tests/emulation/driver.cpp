// One self-test case of the CUDA emulation per run: a toy kernel checked against a host
// reference, or a planted bug that must be reported. tests/test_emulation.py builds this as
// plain C++ three ways (plain, ThreadSanitizer, AddressSanitizer + UBSan) and runs
//   driver <case>
// Exit 0: the results are right. Exit 1: a wrong result, or a launch error (printed). A
// sanitizer report exits with the sanitizer's exit code.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/emulation/padded_rows.h"
#include "planted_bugs.cuh"
#include "toy_kernels.cuh"

namespace {

using fusedattn::cuda::launch;
using fusedattn::emulation::PaddedRows;
using fusedattn::emulation::SourceLocation;

// Host buffers standing in for device memory: 64-byte aligned, as cudaMalloc's are, so that
// 16-byte vector accesses and copies line up (malloc under a sanitizer guarantees less).
template <typename T>
struct DeviceAlignedAllocator {
  using value_type = T;
  DeviceAlignedAllocator() = default;
  template <typename U>
  DeviceAlignedAllocator(const DeviceAlignedAllocator<U>&) {}
  T* allocate(size_t n) {
    void* p = nullptr;
    if (posix_memalign(&p, 64, n * sizeof(T)) != 0) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <typename U>
  bool operator==(const DeviceAlignedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const DeviceAlignedAllocator<U>&) const { return false; }
};
template <typename T>
using Buffer = std::vector<T, DeviceAlignedAllocator<T>>;

// Deterministic small integers: sums and products of them are exact in float, so results
// compare exactly, whatever the order of accumulation.
class Integers {
 public:
  explicit Integers(uint64_t seed) : state_(seed) {}
  int next(int lo, int hi) {
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;  // Knuth's MMIX LCG
    return lo + static_cast<int>((state_ >> 33) % static_cast<uint64_t>(hi - lo + 1));
  }

 private:
  uint64_t state_;
};

// Collects mismatches, printing the first few.
class Check {
 public:
  explicit Check(std::string name) : name_(std::move(name)) {}
  // got == want, else a mismatch of what[index]...
  template <typename... Index>
  void equal(double got, double want, const char* what, Index... index) {
    if (got == want || failures_++ >= kShown) return;
    std::printf("%s: %s", name_.c_str(), what);
    (std::printf("[%d]", static_cast<int>(index)), ...);
    std::printf(": got %g, want %g\n", got, want);
  }
  void that(bool ok, const std::string& what) {
    if (!ok && failures_++ < kShown) std::printf("%s: %s\n", name_.c_str(), what.c_str());
  }
  int result() const {
    if (failures_ == 0) {
      std::printf("%s: ok\n", name_.c_str());
      return 0;
    }
    std::printf("%s: %d mismatches\n", name_.c_str(), failures_);
    return 1;
  }

 private:
  static constexpr int kShown = 5;
  std::string name_;
  int failures_ = 0;
};

using RowSumKernel = void (*)(const float*, int, int, float*);

// Three rows of `cols` floats with a row stride of cols + 4, summed by blocks of 256 threads.
// With the default 300 columns the tile loop runs twice per row, the second tile partly past
// the row. The padding between rows is poisoned under ASan.
int row_sum_case(RowSumKernel kernel, int cols = 300) {
  constexpr int kRows = 3, kThreads = 256;
  const int stride = cols + 4;
  PaddedRows<float> x(kRows, cols, stride);
  Integers values(1);
  std::vector<double> want(kRows, 0.0);
  for (int r = 0; r < kRows; ++r) {
    for (int c = 0; c < cols; ++c) {
      x.at(r, c) = static_cast<float>(values.next(-8, 8));
      want[r] += x.at(r, c);
    }
  }
  std::vector<float> sums(kRows, -1.f);
  launch(kernel, kRows, kThreads, kThreads * sizeof(float), nullptr, x.data(), cols, stride,
         sums.data());
  Check check("row_sum");
  for (int r = 0; r < kRows; ++r) check.equal(sums[r], want[r], "row", r);
  return check.result();
}

int warp_ops_case() {
  constexpr int kBlocks = 2, kThreads = 128, kN = kBlocks * kThreads, kWarps = kN / 32;
  Integers values(2);
  std::vector<int> x(kN);
  for (int i = 0; i < kN; ++i) {
    const int v = values.next(-50, 50);
    // Warp 1 all positive, warp 2 all negative: __all_sync true once, __any_sync false once.
    x[i] = i / 32 == 1 ? std::abs(v) + 1 : i / 32 == 2 ? -std::abs(v) - 1 : v;
  }
  std::vector<int> scan(kN), total(kN), segment_max(kN), broadcast(kN), neighbour(kN);
  std::vector<unsigned> votes(3 * kWarps);
  std::vector<int> block_total(kBlocks);
  launch(toys::warp_ops, kBlocks, kThreads, (kThreads + kThreads / 32) * sizeof(int), nullptr,
         x.data(),
         toys::WarpOpsOut{scan.data(), total.data(), segment_max.data(), broadcast.data(),
                          neighbour.data(), votes.data(), block_total.data()});
  Check check("warp_ops");
  for (int w = 0; w < kWarps; ++w) {
    const int base = 32 * w;
    int running = 0, sum = 0;
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l) sum += x[base + l];
    for (int l = 0; l < 32; ++l) {
      const int i = base + l;
      running += x[i];
      int max = INT_MIN;
      for (int s = 0; s < 8; ++s) max = std::max(max, x[base + l / 8 * 8 + s]);
      check.equal(scan[i], running, "scan", i);
      check.equal(total[i], sum, "total", i);
      check.equal(segment_max[i], max, "segment_max", i);
      check.equal(broadcast[i], x[base + l / 16 * 16 + 5], "broadcast", i);
      check.equal(neighbour[i], x[i ^ 1], "neighbour", i);
      if (x[i] > 0) ballot |= 1u << l;
    }
    check.equal(votes[3 * w], ballot, "ballot", w);
    check.equal(votes[3 * w + 1], ballot != 0, "any", w);
    check.equal(votes[3 * w + 2], ballot == 0xffffffffu, "all", w);
  }
  for (int b = 0; b < kBlocks; ++b) {
    check.equal(block_total[b],
                std::accumulate(x.begin() + b * kThreads, x.begin() + (b + 1) * kThreads, 0),
                "block_total", b);
  }
  return check.result();
}

int transpose_case() {
  constexpr int kRows = 50, kCols = 45;  // 2 x 2 tiles, partial in both directions
  Integers values(3);
  std::vector<float> in(kRows * kCols), out(kRows * kCols, -1.f);
  for (float& v : in) v = static_cast<float>(values.next(-100, 100));
  launch(toys::transpose, dim3((kCols + 31) / 32, (kRows + 31) / 32), dim3(32, 8),
         32 * 33 * sizeof(float), nullptr, in.data(), kRows, kCols, out.data());
  Check check("transpose");
  for (int r = 0; r < kRows; ++r) {
    for (int c = 0; c < kCols; ++c) {
      check.equal(out[c * kRows + r], in[r * kCols + c], "out", c, r);
    }
  }
  return check.result();
}

template <typename T>
T to_storage(float x);
template <>
__half to_storage<__half>(float x) { return __float2half_rn(x); }
template <>
__nv_bfloat16 to_storage<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <typename T>
const char* type_name() { return std::is_same<T, __half>::value ? "f16" : "bf16"; }

// A and B hold multiples of 1/2 in [-2, 2]: exact in f16 and bf16, and so are the products
// and their sums in float.
template <typename T>
using Mma16Kernel = void (*)(const T*, const T*, float*);

template <typename T>
int mma_16x16x16_case(Mma16Kernel<T> kernel, bool a_transposed, bool b_transposed) {
  Integers values(4);
  float a[16][16], b[16][16];
  for (auto& row : a) for (float& v : row) v = 0.5f * static_cast<float>(values.next(-4, 4));
  for (auto& row : b) for (float& v : row) v = 0.5f * static_cast<float>(values.next(-4, 4));
  std::vector<T> a_memory(256), b_memory(256);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      a_memory[a_transposed ? j * 16 + i : i * 16 + j] = to_storage<T>(a[i][j]);  // a[m][k]
      b_memory[b_transposed ? j * 16 + i : i * 16 + j] = to_storage<T>(b[i][j]);  // b[k][n]
    }
  }
  std::vector<float> c(256, -1.f);
  launch(kernel, 1, 32, 2 * 256 * sizeof(T), nullptr, a_memory.data(), b_memory.data(),
         c.data());
  Check check(std::string("mma_m16n8k16.") + type_name<T>() + (a_transposed ? " A^T" : " A") +
              (b_transposed ? " B^T" : " B"));
  for (int m = 0; m < 16; ++m) {
    for (int n = 0; n < 16; ++n) {
      float want = 0.f;
      for (int k = 0; k < 16; ++k) want += a[m][k] * b[k][n];
      check.equal(c[m * 16 + n], want, "c", m, n);
    }
  }
  return check.result();
}

template <typename T, bool kTransposed>
int mma_16x8x8_case() {
  Integers values(5);
  float a[16][8], b[8][8];
  std::vector<T> a_memory(128), b_memory(64);
  std::vector<float> c(128);
  for (int i = 0; i < 128; ++i) {
    const int m = i / 8, k = i % 8;
    a[m][k] = 0.5f * static_cast<float>(values.next(-4, 4));
    a_memory[kTransposed ? k * 16 + m : i] = to_storage<T>(a[m][k]);
    c[i] = static_cast<float>(values.next(-10, 10));
  }
  for (int i = 0; i < 64; ++i) {
    const int k = i / 8, n = i % 8;
    b[k][n] = 0.5f * static_cast<float>(values.next(-4, 4));
    b_memory[kTransposed ? n * 8 + k : i] = to_storage<T>(b[k][n]);
  }
  const std::vector<float> c0 = c;
  launch(toys::mma_16x8x8<T, kTransposed>, 1, 32, (128 + 64) * sizeof(T), nullptr,
         a_memory.data(), b_memory.data(), c.data());
  Check check(std::string("mma_m16n8k8.") + type_name<T>() + (kTransposed ? " A^T B^T" : " A B"));
  for (int m = 0; m < 16; ++m) {
    for (int n = 0; n < 8; ++n) {
      float want = c0[m * 8 + n];
      for (int k = 0; k < 8; ++k) want += a[m][k] * b[k][n];
      check.equal(c[m * 8 + n], want, "c", m, n);
    }
  }
  return check.result();
}

int mma_case() {
  int failed = 0;
  failed |= mma_16x16x16_case<__half>(toys::mma_16x16x16<__half, false, false>, false, false);
  failed |= mma_16x16x16_case<__half>(toys::mma_16x16x16<__half, true, true>, true, true);
  failed |= mma_16x16x16_case<__nv_bfloat16>(toys::mma_16x16x16<__nv_bfloat16, false, false>,
                                             false, false);
  failed |= mma_16x16x16_case<__nv_bfloat16>(toys::mma_16x16x16<__nv_bfloat16, true, true>,
                                             true, true);
  failed |= mma_16x16x16_case<__nv_bfloat16>(toys::mma_16x16x16<__nv_bfloat16, false, true>,
                                             false, true);
  failed |= mma_16x16x16_case<__half>(toys::mma_16x16x16<__half, true, false>, true, false);
  failed |= mma_16x8x8_case<__half, false>();
  failed |= mma_16x8x8_case<__half, true>();
  failed |= mma_16x8x8_case<__nv_bfloat16, false>();
  failed |= mma_16x8x8_case<__nv_bfloat16, true>();
  return failed;
}

using ScaleStreamKernel = void (*)(const float*, const float*, const float*, int, float*);

// 5 full tiles of 1024 floats and a partial one, over 2 blocks.
int scale_stream_case(ScaleStreamKernel kernel) {
  constexpr int kThreads = 256, kBlocks = 2, kN = 4 * kThreads * 5 + 4 * 37;
  Integers values(6);
  Buffer<float> in(kN), out(kN, -1.f), scale{2.f}, bias{0.5f, -1.5f};
  for (float& v : in) v = static_cast<float>(values.next(-1000, 1000));
  launch(kernel, kBlocks, kThreads, (2 * 4 * kThreads + 4) * sizeof(float), nullptr, in.data(),
         scale.data(), bias.data(), kN, out.data());
  Check check("scale_stream");
  for (int i = 0; i < kN; ++i) check.equal(out[i], 2.f * in[i] + bias[i % 2], "out", i);
  return check.result();
}

int bulk_copy_case() {
  constexpr int kBlocks = 2, kThreads = 128, kTiles = 3, kTileFloats = 512;
  constexpr int kN = kBlocks * kTiles * kTileFloats;
  Integers values(7);
  Buffer<float> in(kN), out(kN, -1.f);
  Buffer<float4> addend{{1.f, 2.f, 3.f, 4.f}};
  for (float& v : in) v = static_cast<float>(values.next(-1000, 1000));
  launch(toys::bulk_add, kBlocks, kThreads, 16 + kTileFloats * sizeof(float), nullptr, in.data(),
         addend.data(), kTiles, kTileFloats, out.data());
  Check check("bulk_copy");
  for (int i = 0; i < kN; ++i) check.equal(out[i], in[i] + 1.f + i % 4, "out", i);
  return check.result();
}

int atomics_case() {
  constexpr int kN = 1000, kBins = 7, kBlocks = 3, kThreads = 64;
  Integers values(8);
  std::vector<int> x(kN);
  for (int& v : x) v = values.next(0, 100000);
  std::vector<int> counts(kBins, 0), first_claim(kBins, -1), any_claim(kBins, -1);
  unsigned max_value = 0;
  int min_value = INT_MAX;
  float sum = 0.f;
  double sum_double = 0.0;
  launch(toys::histogram, kBlocks, kThreads, 0, nullptr, x.data(), kN, kBins,
         toys::HistogramOut{counts.data(), &max_value, &min_value, &sum, &sum_double,
                            first_claim.data(), any_claim.data()});
  Check check("atomics");
  std::vector<int> want_counts(kBins, 0);
  for (int v : x) ++want_counts[v % kBins];
  for (int b = 0; b < kBins; ++b) {
    check.equal(counts[b], want_counts[b], "count", b);
    for (int claim : {first_claim[b], any_claim[b]}) {
      check.that(claim >= 0 && claim < kN && x[claim] % kBins == b,
                 "bin " + std::to_string(b) + " claimed by " + std::to_string(claim));
    }
  }
  check.equal(max_value, *std::max_element(x.begin(), x.end()), "max");
  check.equal(min_value, *std::min_element(x.begin(), x.end()), "min");
  check.equal(sum, 0.5 * kN, "sum");
  check.equal(sum_double, std::accumulate(x.begin(), x.end(), 0.0), "sum_double");
  return check.result();
}

// The block order: first as the environment selects (FUSEDATTN_EMULATE_BLOCK_ORDER, forward
// when unset), then each order through the API.
int block_order_case() {
  constexpr int kBlocks = 16;
  const auto run = [] {
    int next_slot = 0;
    std::vector<int> order(kBlocks, -1);
    launch(toys::record_block_order, kBlocks, 32, 0, nullptr, &next_slot, order.data());
    return order;
  };
  std::vector<int> forward(kBlocks), reverse(kBlocks);
  std::iota(forward.begin(), forward.end(), 0);
  std::iota(reverse.rbegin(), reverse.rend(), 0);
  const auto is_shuffle = [&](const std::vector<int>& order) {
    return std::is_permutation(order.begin(), order.end(), forward.begin()) &&
           order != forward && order != reverse;
  };
  Check check("block_order");
  const char* env = std::getenv("FUSEDATTN_EMULATE_BLOCK_ORDER");
  const std::string selected = env != nullptr ? env : "forward";
  const std::vector<int> first = run();
  if (selected == "forward") check.that(first == forward, "the environment's forward order");
  if (selected == "reverse") check.that(first == reverse, "the environment's reverse order");
  if (selected.rfind("shuffle", 0) == 0) check.that(is_shuffle(first), "the environment's shuffle");

  using fusedattn::emulation::BlockOrder;
  using fusedattn::emulation::set_block_order;
  set_block_order(BlockOrder::kForward);
  check.that(run() == forward, "forward");
  set_block_order(BlockOrder::kReverse);
  check.that(run() == reverse, "reverse");
  set_block_order(BlockOrder::kShuffle, 1);
  const std::vector<int> shuffled = run();
  check.that(is_shuffle(shuffled), "shuffle:1 is a shuffle");
  check.that(run() == shuffled, "shuffle:1 is reproducible");
  set_block_order(BlockOrder::kShuffle, 2);
  check.that(run() != shuffled, "shuffle:2 differs from shuffle:1");
  return check.result();
}

// Defaults model an H200 (FUSEDATTN_EMULATE_SM_COUNT overrides the SM count); launch raises the
// shared memory opt-in itself; the attributes are settable.
int device_attributes_case() {
  Check check("device_attributes");
  const char* sm_env = std::getenv("FUSEDATTN_EMULATE_SM_COUNT");
  fusedattn::cuda::DeviceInfo info = fusedattn::cuda::device_info(0);
  check.equal(info.sm_count, sm_env != nullptr ? std::atoi(sm_env) : 132, "sm_count");
  check.equal(info.shared_memory_per_block_optin, 232448, "shared_memory_per_block_optin");
  check.equal(info.shared_memory_per_sm, 233472, "shared_memory_per_sm");
  check.equal(info.max_threads_per_sm, 2048, "max_threads_per_sm");
  check.equal(info.l2_cache_bytes, 52428800, "l2_cache_bytes");
  check.equal(info.compute_capability_major * 10 + info.compute_capability_minor, 90, "cc");
  check.that(info.name.find("H200") != std::string::npos, "name " + info.name);

  std::vector<float> out(64, -1.f);
  for (int repeat = 0; repeat < 2; ++repeat) {  // the second launch finds the opt-in raised
    launch(toys::rotate_large_shared_memory, 1, 64, 64 * 1024, nullptr, out.data());
  }
  for (int i = 0; i < 64; ++i) check.equal(out[i], (i + 1) % 64, "rotate", i);
  try {
    launch(toys::rotate_large_shared_memory, 1, 64, 240 * 1024, nullptr, out.data());
    check.that(false, "a launch above the opt-in maximum ran");
  } catch (const std::runtime_error& e) {
    check.that(std::string(e.what()).find("opt-in maximum") != std::string::npos, e.what());
  }

  fusedattn::emulation::DeviceAttributes a100 = fusedattn::emulation::device_attributes();
  a100.name = "NVIDIA A100 (emulated)";
  a100.sm_count = 108;
  a100.compute_capability_major = 8;
  a100.shared_memory_per_block_optin = 166912;
  a100.shared_memory_per_sm = 167936;
  a100.l2_cache_bytes = 41943040;
  fusedattn::emulation::set_device_attributes(a100);
  info = fusedattn::cuda::device_info(0);
  check.equal(info.sm_count, 108, "A100 sm_count");
  check.equal(info.shared_memory_per_block_optin, 166912, "A100 opt-in");
  check.equal(info.compute_capability_major, 8, "A100 cc");
  try {
    launch(toys::rotate_large_shared_memory, 1, 64, 200 * 1024, nullptr, out.data());
    check.that(false, "a launch above the A100's opt-in maximum ran");
  } catch (const std::runtime_error& e) {
    check.that(std::string(e.what()).find("opt-in maximum") != std::string::npos, e.what());
  }
  return check.result();
}

// A kernel with 384 KiB of locals per thread: it needs a fiber stack larger than the default,
// which the test sets with FUSEDATTN_EMULATE_STACK_KB.
__global__ void large_stack_kernel(int n, float* out) {
  volatile float local[96 * 1024];
  for (int i = 0; i < n; ++i) local[i] = static_cast<float>(i % 1000);
  float sum = 0.f;
  for (int i = 0; i < n; ++i) sum += local[i];
  out[threadIdx.x] = sum;
}

int large_stack_case() {
  constexpr int kN = 96 * 1024;
  std::vector<float> out(32, -1.f);
  launch(large_stack_kernel, 1, 32, 0, nullptr, kN, out.data());
  float want = 0.f;
  for (int i = 0; i < kN; ++i) want += static_cast<float>(i % 1000);
  Check check("large_stack");
  for (int i = 0; i < 32; ++i) check.equal(out[i], want, "out", i);
  return check.result();
}

// The emulation's speed on a 256-thread block whose tile loop has two barriers per tile, and on
// many small blocks (the cost of setting up a block's fibers).
int bench_case() {
  using Clock = std::chrono::steady_clock;
  constexpr int kThreads = 256, kTiles = 4000, kBlocks = 400;
  std::vector<float> out(kBlocks * kThreads);
  auto start = Clock::now();
  launch(toys::barrier_loop, 1, kThreads, kThreads * sizeof(float), nullptr, kTiles, out.data());
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("barrier loop: %d threads, %d tiles in %.3f s: %.0f tiles/s, %.0f barriers/s, "
              "%.2f M fiber switches/s\n", kThreads, kTiles, seconds, kTiles / seconds,
              2 * kTiles / seconds, 2.0 * kTiles * kThreads / seconds / 1e6);
  start = Clock::now();
  launch(toys::barrier_loop, kBlocks, kThreads, kThreads * sizeof(float), nullptr, 1, out.data());
  seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("block setup: %d blocks of %d threads, one tile each, in %.3f s: %.0f blocks/s\n",
              kBlocks, kThreads, seconds, kBlocks / seconds);
  return 0;
}

// Runs a launch that must fail. Returns 1 after printing its error and checking that the
// emulator still runs a clean kernel with barriers and warp collectives (the failed launch
// abandoned its fibers cleanly); 0 if the launch succeeded, the bug unreported.
int expect_launch_error(const std::function<void()>& launch_with_bug) {
  try {
    launch_with_bug();
  } catch (const std::runtime_error& e) {
    std::printf("launch error: %s\n", e.what());
    if (warp_ops_case() != 0) {
      std::printf("the emulator did not recover from the failed launch\n");
      return 3;
    }
    return 1;
  }
  std::printf("no error reported\n");
  return 0;
}

int block_of_threads(void (*kernel)(int*), int threads) {
  std::vector<int> out(threads, 0);
  return expect_launch_error([&] { launch(kernel, 1, threads, 0, nullptr, out.data()); });
}

// 64 KB of shared memory, launched past runtime.cuh's launch (which raises the opt-in itself):
// with the raw emulator launch.
int missing_optin_case() {
  std::vector<float> out(64);
  return expect_launch_error([&] {
    const fusedattn::emulation::LaunchConfig config{
        1, 64, 64 * 1024, SourceLocation::current()};  // PLANTED: missing_optin
    const std::string error =
        fusedattn::emulation::launch_kernel(toys::rotate_large_shared_memory, config, out.data());
    if (!error.empty()) throw std::runtime_error(error);
  });
}

int block_not_multiple_of_32_case() {
  const auto kernel = toys::rotate_large_shared_memory;
  std::vector<float> out(48);
  return expect_launch_error([&] {
    launch(kernel, 1, 48, 192, nullptr, out.data());  // PLANTED: block_not_multiple_of_32
  });
}

const std::map<std::string, std::function<int()>>& cases() {
  static const std::map<std::string, std::function<int()>> all = {
      // Clean toys.
      {"row_sum", [] { return row_sum_case(toys::row_sum); }},
      {"warp_ops", warp_ops_case},
      {"transpose", transpose_case},
      {"mma", mma_case},
      {"cp_async", [] { return scale_stream_case(toys::scale_stream); }},
      {"bulk_copy", bulk_copy_case},
      {"atomics", atomics_case},
      {"block_order", block_order_case},
      {"device_attributes", device_attributes_case},
      {"large_stack", large_stack_case},
      {"bench", bench_case},
      // Planted bugs.
      {"missing_barrier", [] { return row_sum_case(planted::row_sum_missing_barrier); }},
      {"global_overread", [] { return row_sum_case(planted::row_sum_global_overread); }},
      {"shared_overread", [] { return row_sum_case(planted::row_sum_shared_overread); }},
      // One partial tile per row: its tail is shared memory no thread wrote.
      {"uninitialized_shared",
       [] { return row_sum_case(planted::row_sum_uninitialized_shared, 200); }},
      {"cp_async_early_read", [] { return scale_stream_case(planted::scale_stream_early_read); }},
      {"mma_lane_mapping",
       [] {
         return mma_16x16x16_case<__half>(planted::mma_lane_mapping<__half>, false, false) |
                mma_16x16x16_case<__nv_bfloat16>(planted::mma_lane_mapping<__nv_bfloat16>, false,
                                                 false);
       }},
      {"intra_warp_race",
       [] {
         std::vector<int> x(32), out(32);
         std::iota(x.begin(), x.end(), 0);
         launch(planted::intra_warp_race, 1, 32, 32 * sizeof(int), nullptr, x.data(), out.data());
         Check check("intra_warp_race");
         for (int i = 0; i < 32; ++i) check.equal(out[i], i ^ 1, "out", i);
         return check.result();
       }},
      {"warp_exchange_missing_syncwarp",
       [] {
         std::vector<int> x(32), out(32);
         std::iota(x.begin(), x.end(), 0);
         launch(planted::warp_exchange_missing_syncwarp, 1, 32, 32 * sizeof(int), nullptr,
                x.data(), out.data());
         Check check("warp_exchange_missing_syncwarp");
         for (int i = 0; i < 32; ++i) check.equal(out[i], i + 1, "out", i);
         return check.result();
       }},
      {"two_block_race",
       [] {
         int out = -1;
         launch(planted::two_block_race, 2, 32, 0, nullptr, &out);
         Check check("two_block_race");
         check.that(out == 0 || out == 1, "out " + std::to_string(out));
         return check.result();
       }},
      {"divergent_barrier",
       [] {
         std::vector<float> out(64);
         return expect_launch_error(
             [&] { launch(planted::divergent_barrier, 1, 64, 0, nullptr, out.data()); });
       }},
      {"barrier_after_exit",
       [] {
         std::vector<float> out(128);
         return expect_launch_error(
             [&] { launch(planted::barrier_after_exit, 1, 128, 0, nullptr, out.data()); });
       }},
      {"shuffle_exited_lanes", [] { return block_of_threads(planted::shuffle_exited_lanes, 32); }},
      {"deadlock", [] { return block_of_threads(planted::deadlock, 64); }},
      {"mismatched_warp_ops", [] { return block_of_threads(planted::mismatched_warp_ops, 32); }},
      {"shuffle_source_outside_mask",
       [] { return block_of_threads(planted::shuffle_source_outside_mask, 32); }},
      {"misaligned_vector_load",
       [] {
         Buffer<float> x(8, 1.f), out(32);
         return expect_launch_error([&] {
           launch(planted::misaligned_vector_load, 1, 32, 0, nullptr, x.data(), out.data());
         });
       }},
      {"missing_optin", missing_optin_case},
      {"block_not_multiple_of_32", block_not_multiple_of_32_case},
  };
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || cases().count(argv[1]) == 0) {
    std::fprintf(stderr, "usage: %s <case>; cases:", argv[0]);
    for (const auto& c : cases()) std::fprintf(stderr, " %s", c.first.c_str());
    std::fprintf(stderr, "\n");
    return 2;
  }
  try {
    return cases().at(argv[1])();
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
}
