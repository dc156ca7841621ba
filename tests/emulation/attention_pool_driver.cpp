// attention_pool's CUDA kernels (csrc/attention_pool/cuda, compiled as C++ against the CPU
// emulation of the CUDA execution model) on one case per run, every output and gradient checked
// against a float64 host formulation of docs/attention_pool.md. tests/emulation/sanitize.py
// builds this under ThreadSanitizer and under AddressSanitizer + UBSan and runs it over a shape
// set that takes every tiled loop of the kernels at least twice; with a planted mutant of the
// kernels it must fail.
//
//   attention_pool_driver <case> <float32|bfloat16|float16> <nchw|nhwc|dense|rows8>
//
// Inputs and gradients live in strided buffers whose gaps are poisoned under ASan, so a
// one-element over-read or over-write anywhere is reported, not only past the end of a buffer:
// nchw (pixel runs, 16-byte aligned, a gap after each run and a run's worth after each sample),
// nhwc (channel runs, likewise), dense (NCHW rows back to back, a gap after each sample: small
// maps take the kernels' flat path) and rows8 (pixel runs only 8-byte aligned: the element by
// element path). Outputs start as 0xFF
// bytes (NaN): an element nobody writes fails the check. Exit 0: right; 1: wrong or a launch
// error (printed); a sanitizer report exits with the sanitizer's code.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <sanitizer/asan_interface.h>

#include "attention_pool/cuda/kernels.h"
#include "common/cuda/convert.cuh"
#include "driver_values.h"

namespace {

namespace ap = fusedattn::attention_pool;
using fusedattn::cuda::DType;

struct Case {
  int64_t B, C, H, W, K;
  bool mean_pool, diversity;
};

// Every tiled loop at least twice: channel tiles (64), pixel tiles (64), "gather"'s and
// "logits"' pixel tiles (256: "batched_splits"; 512 where K <= 8: "uncached", "held_splits");
// every map-accumulator variant (K <= 8, 16, 32, 64); N = 1, C = 0, B = 1.
const std::map<std::string, Case> kCases = {
    {"tiles", {2, 130, 9, 9, 8, false, true}},         // 3 channel tiles, 2 pixel tiles
    // 300 pixels: one "epilogue" block a sample walking 33 maps in batches; 16 maps a thread
    {"maps33", {2, 70, 15, 20, 33, true, true}},
    // 483 pixels, K = 8: "epilogue" with 16 warps, the last one short
    {"wide_epilogue", {1, 17, 21, 23, 8, false, true}},
    {"maps64", {1, 72, 7, 7, 64, false, true}},        // the most maps, one sample
    {"maps9", {3, 40, 5, 4, 9, true, false}},          // no diversity, 2 map tiles
    {"maps70", {2, 70, 5, 8, 70, false, true}},        // two map groups: gf launched apart
    // 7x7: the flat span where dense, 5 channel tiles (the last of 8): on one SM a block
    // streams them all (nchw too, in two pixel chunks each; nhwc: blocks of 3 and 2 tiles),
    // its ring turning over
    {"small_map", {2, 264, 7, 7, 8, false, true}},
    {"one_pixel", {2, 17, 1, 1, 1, false, true}},      // N = 1: loads along the channels
    {"no_channels", {2, 0, 4, 4, 3, false, true}},     // C = 0: no pooling work at all
    // float32's 67 KB of logits a sample: past "stats"' shared copy (kStatsCacheBytes)
    {"uncached", {1, 17, 58, 58, 5, true, true}},
    // (run on one SM only) blocks streaming 4 channel tiles (the last of 8 channels) of two
    // pixel chunks, in two map groups, the second of 6 maps
    {"stream_groups", {2, 200, 7, 7, 70, true, true}},
    // 529 pixels, K = 8: "gather" and "logits" holding two pixels' maps a thread (a last tile of
    // 17), 4 channel tiles split between blocks: "gather" stores the splits' totals for "logits"
    {"held_splits", {1, 200, 23, 23, 8, false, true}},
    // 575 pixels, K = 33: "gather" and "logits" walking a pixel's maps in batches, 2 channel
    // tiles split between blocks: "gather" adds the splits in place first
    {"batched_splits", {1, 70, 23, 25, 33, false, true}},
};

// Deterministic values in [-2, 2).
using fusedattn::emulation::driver::Random;
using fusedattn::emulation::driver::to_double;
using fusedattn::emulation::driver::to_storage;

enum class Layout { kNchw, kNhwc, kDense, kRows8 };

// A (B, R, N) tensor in one of the layouts above. Runs are contiguous (along N, or along R for
// nhwc), start 16-byte aligned (8 for rows8) and are followed by poisoned bytes (none between
// the runs of dense, which a poisoned run after every sample closes).
template <typename T>
class StridedTensor {
 public:
  StridedTensor(int64_t B, int64_t R, int64_t N, Layout layout) {
    const bool along_pixels = layout != Layout::kNhwc;
    const int64_t run = along_pixels ? N : R, runs = along_pixels ? R : N;
    const int64_t e = static_cast<int64_t>(sizeof(T));
    int64_t run_stride = (run * e + 8 + 15) / 16 * (16 / e);  // a gap of at least 8 bytes
    if (layout == Layout::kDense) run_stride = run;
    if (layout == Layout::kRows8) run_stride = (run * e + 8 + 7) / 8 * (8 / e) | (8 / e);
    const int64_t v = 16 / e;  // samples start 16-byte aligned
    sample_stride_ = ((runs + 1) * run_stride + v - 1) / v * v;
    stride_r_ = along_pixels ? run_stride : 1;
    stride_n_ = along_pixels ? 1 : run_stride;
    bytes_ = static_cast<size_t>((B > 0 ? B : 1) * sample_stride_) * sizeof(T);
    if (posix_memalign(reinterpret_cast<void**>(&data_), 64, bytes_) != 0) throw std::bad_alloc();
    std::memset(data_, 0xFF, bytes_);
    ASAN_POISON_MEMORY_REGION(data_, bytes_);
    for (int64_t b = 0; b < B; ++b) {
      if (layout == Layout::kDense) {
        ASAN_UNPOISON_MEMORY_REGION(data_ + b * sample_stride_, runs * run * e);
        continue;
      }
      for (int64_t i = 0; i < runs; ++i) {
        ASAN_UNPOISON_MEMORY_REGION(data_ + b * sample_stride_ + i * run_stride, run * e);
      }
    }
  }
  ~StridedTensor() {
    ASAN_UNPOISON_MEMORY_REGION(data_, bytes_);
    std::free(data_);
  }
  StridedTensor(const StridedTensor&) = delete;
  StridedTensor& operator=(const StridedTensor&) = delete;

  T& at(int64_t b, int64_t r, int64_t n) {
    return data_[b * sample_stride_ + r * stride_r_ + n * stride_n_];
  }
  T* data() { return data_; }
  int64_t stride_b() const { return sample_stride_; }
  int64_t stride_r() const { return stride_r_; }
  int64_t stride_n() const { return stride_n_; }

 private:
  int64_t sample_stride_, stride_r_, stride_n_;
  size_t bytes_;
  T* data_ = nullptr;
};

// A dense output or scratch buffer, 0xFF-filled (NaN) so that unwritten elements show.
template <typename T>
std::vector<T> unwritten(int64_t n) {
  std::vector<T> v(static_cast<size_t>(n > 0 ? n : 1));
  std::memset(v.data(), 0xFF, v.size() * sizeof(T));
  return v;
}

// docs/attention_pool.md in float64, one sample: forward outputs and, for cotangents gv, gs,
// gd, the gradients (the spec's hand-written backward, with the lowest-k tie rule).
struct Reference {
  std::vector<double> pooled, importance, logsumexp, diversity, grad_f, grad_a;
};

Reference reference(const Case& c, const std::vector<double>& f, const std::vector<double>& a,
                    const std::vector<double>& gv, const std::vector<double>& gs,
                    const std::vector<double>& gd) {
  const int64_t B = c.B, C = c.C, K = c.K, N = c.H * c.W;
  const double alpha = c.mean_pool ? 1.0 / N : 1.0;
  Reference r{std::vector<double>(B * K * C), std::vector<double>(B * K),
              std::vector<double>(B * K), std::vector<double>(B),
              std::vector<double>(B * C * N), std::vector<double>(B * K * N)};
  for (int64_t b = 0; b < B; ++b) {
    const double* fb = f.data() + b * C * N;
    const double* ab = a.data() + b * K * N;
    std::vector<double> sig(K * N), p(K * N), s(K), gap(K);
    double gmax = -INFINITY;
    for (int64_t k = 0; k < K; ++k) {
      double m = -INFINITY, sum = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        sig[k * N + n] = 1.0 / (1.0 + std::exp(-ab[k * N + n]));
        gap[k] += sig[k * N + n] / N;
        m = std::max(m, ab[k * N + n]);
      }
      for (int64_t n = 0; n < N; ++n) sum += std::exp(ab[k * N + n] - m);
      r.logsumexp[b * K + k] = m + std::log(sum);
      for (int64_t n = 0; n < N; ++n) {
        p[k * N + n] = std::exp(ab[k * N + n] - r.logsumexp[b * K + k]);
      }
      gmax = std::max(gmax, gap[k]);
    }
    double z = 0.0;
    for (int64_t k = 0; k < K; ++k) z += std::exp(gap[k] - gmax);
    for (int64_t k = 0; k < K; ++k) s[k] = r.importance[b * K + k] = std::exp(gap[k] - gmax) / z;
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t ch = 0; ch < C; ++ch) {
        double acc = 0.0;
        for (int64_t n = 0; n < N; ++n) acc += s[k] * sig[k * N + n] * fb[ch * N + n];
        r.pooled[(b * K + k) * C + ch] = alpha * acc;
      }
    }
    std::vector<int64_t> winner(N);
    double D = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      int64_t best = 0;
      for (int64_t k = 1; k < K; ++k) {
        if (s[k] * p[k * N + n] > s[best] * p[best * N + n]) best = k;
      }
      winner[n] = best;
      D += s[best] * p[best * N + n];
    }
    r.diversity[b] = 1.0 - D;
    // Backward.
    const double g_d = c.diversity ? gd[b] : 0.0;
    std::vector<double> gw(K * N, 0.0), gs_tot(K), won(K, 0.0);
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t ch = 0; ch < C; ++ch) {
          gw[k * N + n] += alpha * gv[(b * K + k) * C + ch] * fb[ch * N + n];
        }
      }
    }
    for (int64_t ch = 0; ch < C; ++ch) {
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0.0;
        for (int64_t k = 0; k < K; ++k) {
          acc += alpha * gv[(b * K + k) * C + ch] * s[k] * sig[k * N + n];
        }
        r.grad_f[(b * C + ch) * N + n] = acc;
      }
    }
    double weighted = 0.0;
    for (int64_t k = 0; k < K; ++k) {
      double gws = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        gws += gw[k * N + n] * sig[k * N + n];
        if (winner[n] == k) won[k] += p[k * N + n];
      }
      gs_tot[k] = gs[b * K + k] + gws - g_d * won[k];
      weighted += s[k] * gs_tot[k];
    }
    for (int64_t k = 0; k < K; ++k) {
      const double gg = s[k] * (gs_tot[k] - weighted);
      const double p_dot_gp = -g_d * s[k] * won[k];
      for (int64_t n = 0; n < N; ++n) {
        const double sg = sig[k * N + n];
        const double gsig = s[k] * gw[k * N + n] + gg / N;
        const double gp = winner[n] == k ? -g_d * s[k] : 0.0;
        r.grad_a[(b * K + k) * N + n] = gsig * sg * (1 - sg) + p[k * N + n] * (gp - p_dot_gp);
      }
    }
  }
  return r;
}

// Collects mismatches, printing the first few.
class Check {
 public:
  Check(double atol, double rtol) : atol_(atol), rtol_(rtol) {}
  void close(double got, double want, const char* what, int64_t index) {
    if (std::isfinite(got) && std::fabs(got - want) <= atol_ + rtol_ * std::fabs(want)) return;
    if (failures_++ < 8) {
      std::printf("%s[%lld]: got %.8g, want %.8g\n", what, static_cast<long long>(index), got,
                  want);
    }
  }
  int failures() const { return failures_; }

 private:
  double atol_, rtol_;
  int failures_ = 0;
};

template <typename T>
int run(const std::string& name, const Case& c, Layout layout, DType dtype, double atol,
        double rtol) {
  const int64_t B = c.B, C = c.C, K = c.K, N = c.H * c.W;
  Random random(42);
  StridedTensor<T> f(B, C, N, layout), a(B, K, N, layout), gf(B, C, N, layout),
      ga(B, K, N, layout);
  std::vector<double> f64(B * C * N), a64(B * K * N), gv(B * K * C), gs(B * K), gd(B);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t ch = 0; ch < C; ++ch) {
      for (int64_t n = 0; n < N; ++n) {
        f.at(b, ch, n) = to_storage<T>(random.next());
        f64[(b * C + ch) * N + n] = to_double(f.at(b, ch, n));
      }
    }
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t n = 0; n < N; ++n) {
        a.at(b, k, n) = to_storage<T>(2.0 * random.next());
        a64[(b * K + k) * N + n] = to_double(a.at(b, k, n));
      }
    }
  }
  std::vector<T> gv_stored(B * K * C);
  for (int64_t i = 0; i < B * K * C; ++i) {
    gv_stored[i] = to_storage<T>(random.next());
    gv[i] = to_double(gv_stored[i]);
  }
  for (double& g : gs) g = random.next();
  for (double& g : gd) g = random.next();
  std::vector<float> gs32(gs.begin(), gs.end()), gd32(gd.begin(), gd.end());
  const Reference want = reference(c, f64, a64, gv, gs, gd);

  auto pooled = unwritten<T>(B * K * C);
  auto importance = unwritten<float>(B * K), logsumexp = unwritten<float>(B * K);
  auto diversity = unwritten<float>(B);
  ap::ForwardParams fp{};
  fp.features = f.data(), fp.logits = a.data(), fp.pooled = pooled.data();
  fp.importance = importance.data(), fp.logsumexp = logsumexp.data();
  fp.diversity = c.diversity ? diversity.data() : nullptr;
  fp.sfb = f.stride_b(), fp.sfc = f.stride_r(), fp.sfn = f.stride_n();
  fp.sab = a.stride_b(), fp.sak = a.stride_r(), fp.san = a.stride_n();
  fp.B = B, fp.C = C, fp.K = K, fp.N = N, fp.mean_pool = c.mean_pool;
  // The plans as ops_cuda.cpp makes them: the feature load from the strides, the emulated
  // device's SM count (FUSEDATTN_EMULATE_SM_COUNT changes it).
  const ap::cuda::FeatureLoad load = ap::cuda::choose_feature_load(
      sizeof(T), reinterpret_cast<uintptr_t>(f.data()), f.stride_b(), f.stride_r(), f.stride_n(),
      C, N);
  const int sms = ap::cuda::device_sm_count(0);
  const ap::cuda::ForwardPlan fplan = ap::cuda::plan_forward(B, C, K, N, sizeof(T), load, sms);
  auto w_scratch = unwritten<T>(static_cast<int64_t>(fplan.w_scratch_elements));
  auto partial = unwritten<float>(static_cast<int64_t>(fplan.partial_floats));
  ap::cuda::launch_forward(fp, fplan, dtype, {w_scratch.data(), partial.data()}, nullptr);

  ap::BackwardParams bp{};
  bp.grad_pooled = gv_stored.data(), bp.grad_importance = gs32.data();
  bp.grad_diversity = c.diversity ? gd32.data() : nullptr;
  bp.features = f.data(), bp.logits = a.data();
  bp.importance = importance.data(), bp.logsumexp = logsumexp.data();
  bp.grad_features = gf.data(), bp.grad_logits = ga.data();
  bp.sfb = f.stride_b(), bp.sfc = f.stride_r(), bp.sfn = f.stride_n();
  bp.sab = a.stride_b(), bp.sak = a.stride_r(), bp.san = a.stride_n();
  bp.gfb = gf.stride_b(), bp.gfc = gf.stride_r(), bp.gfn = gf.stride_n();
  bp.gab = ga.stride_b(), bp.gak = ga.stride_r(), bp.gan = ga.stride_n();
  bp.B = B, bp.C = C, bp.K = K, bp.N = N, bp.mean_pool = c.mean_pool;
  const ap::cuda::FeatureLoad bload = ap::cuda::choose_backward_load(
      load, sizeof(T), reinterpret_cast<uintptr_t>(gf.data()), gf.stride_b(), gf.stride_r(),
      gf.stride_n(), C, N);
  const ap::cuda::BackwardPlan bplan = ap::cuda::plan_backward(
      B, C, K, N, sizeof(T), bload, reinterpret_cast<uintptr_t>(bp.grad_pooled), sms);
  auto gv_scratch = unwritten<T>(static_cast<int64_t>(bplan.gv_scratch_elements));
  auto bw_scratch = unwritten<T>(static_cast<int64_t>(bplan.w_scratch_elements));
  auto gw = unwritten<float>(static_cast<int64_t>(bplan.gw_floats));
  auto sums = unwritten<float>(static_cast<int64_t>(bplan.sums_floats));
  ap::cuda::launch_backward(bp, bplan, dtype,
                            {gv_scratch.data(), bw_scratch.data(), gw.data(), sums.data()},
                            nullptr);
  std::printf("%s: %s loads, %lld pixel splits, %lld channel splits, %lld map groups\n",
              name.c_str(), ap::cuda::feature_load_name(load),
              static_cast<long long>(fplan.pixel_splits),
              static_cast<long long>(bplan.channel_splits),
              static_cast<long long>(fplan.map_groups));

  Check check(atol, rtol);
  for (int64_t i = 0; i < B * K * C; ++i) check.close(to_double(pooled[i]), want.pooled[i], "pooled", i);
  for (int64_t i = 0; i < B * K; ++i) {
    check.close(importance[i], want.importance[i], "importance", i);
    check.close(logsumexp[i], want.logsumexp[i], "logsumexp", i);
  }
  if (c.diversity) {
    for (int64_t b = 0; b < B; ++b) check.close(diversity[b], want.diversity[b], "diversity", b);
  }
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t ch = 0; ch < C; ++ch) {
      for (int64_t n = 0; n < N; ++n) {
        const int64_t i = (b * C + ch) * N + n;
        check.close(to_double(gf.at(b, ch, n)), want.grad_f[i], "grad_features", i);
      }
    }
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t n = 0; n < N; ++n) {
        const int64_t i = (b * K + k) * N + n;
        check.close(to_double(ga.at(b, k, n)), want.grad_a[i], "grad_logits", i);
      }
    }
  }
  std::printf("%s: %s (%d mismatches)\n", name.c_str(), check.failures() ? "FAILED" : "ok",
              check.failures());
  return check.failures() ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || !kCases.count(argv[1])) {
    std::fprintf(stderr, "usage: %s <case> <float32|bfloat16|float16> <nchw|nhwc|dense|rows8>; cases:",
                 argv[0]);
    for (const auto& entry : kCases) std::fprintf(stderr, " %s", entry.first.c_str());
    std::fprintf(stderr, "\n");
    return 2;
  }
  const Case& c = kCases.at(argv[1]);
  const std::string dtype = argv[2], layout_name = argv[3];
  const std::map<std::string, Layout> layouts = {{"nchw", Layout::kNchw}, {"nhwc", Layout::kNhwc},
                                                 {"dense", Layout::kDense}, {"rows8", Layout::kRows8}};
  if (!layouts.count(layout_name)) {
    std::fprintf(stderr, "unknown layout %s\n", layout_name.c_str());
    return 2;
  }
  const Layout layout = layouts.at(layout_name);
  const std::string name = std::string(argv[1]) + " " + dtype + " " + layout_name;
  try {
    // Tolerances relative to float64 on the same rounded inputs: float32 accumulation, and the
    // rounding of 16-bit outputs and gradients.
    if (dtype == "float32") return run<float>(name, c, layout, DType::Float, 2e-4, 2e-4);
    if (dtype == "bfloat16") return run<__nv_bfloat16>(name, c, layout, DType::BFloat16, 2e-2, 2e-2);
    if (dtype == "float16") return run<__half>(name, c, layout, DType::Half, 4e-3, 4e-3);
  } catch (const std::exception& error) {
    std::printf("%s\n", error.what());
    return 1;
  }
  std::fprintf(stderr, "unknown dtype %s\n", dtype.c_str());
  return 2;
}
