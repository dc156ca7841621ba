// channel_attention's CUDA kernels (csrc/channel_attention/cuda, compiled as C++ against the CPU
// emulation of the CUDA execution model) on one case per run, y, the saved statistics and every
// gradient checked against a float64 host formulation of docs/channel_attention.md.
// tests/emulation/sanitize.py builds this under ThreadSanitizer and AddressSanitizer + UBSan.
//
//   channel_attention_driver <case> <float32|bfloat16|float16> <nchw|nhwc|nchw_dense|nhwc_dense>
//
// x and grad_y live in PaddedRows buffers (csrc/common/emulation/padded_rows.h) whose padding
// after every contiguous row is poisoned under ASan; "_dense" layouts have no padding (the
// kernels' vector variants for dense tensors, whose vectors span rows: ASan then catches only a
// read past the tensor's end); outputs start as 0xFF bytes (NaN), so an element nobody writes
// fails the check. Exit 0: right; 1: wrong or a launch error (printed).
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "channel_attention/cuda/kernels.h"
#include "common/cuda/convert.cuh"
#include "common/cuda/runtime.cuh"
#include "common/emulation/emulator.h"
#include "common/emulation/padded_rows.h"
#include "driver_values.h"

namespace {

namespace ca = fusedattn::channel_attention;
using fusedattn::cuda::DType;
using fusedattn::emulation::PaddedRows;

struct Case {
  int64_t B, C, H, W, R;
  bool silu_hardsigmoid, float_weights, biases;
  size_t l2_bytes;  // the emulated device's L2 (small: several batch chunks)
  // The squeeze's pixel rows read as if grad_y's and x's rows differed in alignment (its
  // pixel_rows_misaligned variant; the buffers' rows all start on 16-byte boundaries).
  bool misaligned_rows = false;
};

// Every loop at least twice: pixel rows longer than a warp's vectors, several pixel splits,
// more bottleneck channels than warps, more channels than threads, batch chunks, MLP blocks
// with padded samples; N = 1; the MLP's > 48 KB of shared memory. tiles: the squeeze's
// misaligned pixel rows; long_rows (run with one SM: no pixel splits): aligned pixel rows of
// several steps.
const std::map<std::string, Case> kCases = {
    {"tiles", {3, 40, 23, 25, 20, false, false, true, 52428800, true}},
    {"long_rows", {2, 10, 41, 41, 4, false, false, true, 52428800}},
    {"wide", {2, 520, 3, 3, 3, true, true, true, 52428800}},
    {"chunks", {9, 24, 8, 8, 6, true, false, false, 4096}},
    {"one_pixel", {2, 17, 1, 1, 1, false, true, true, 52428800}},
    {"small", {2, 12, 9, 9, 5, true, true, true, 52428800}},  // TSan-sized launches
    {"big_mlp", {1, 3200, 1, 1, 4, false, true, true, 52428800}},
};

using fusedattn::emulation::driver::Random;
using fusedattn::emulation::driver::to_double;
using fusedattn::emulation::driver::to_storage;

// A (B, C, N) tensor as padded rows: along the pixels (nchw) or along the channels (nhwc), each
// row 16-byte aligned and followed by poisoned padding; or dense (rows back to back).
template <typename T>
struct Strided {
  Strided(int64_t B, int64_t C, int64_t N, bool nchw, bool dense)
      : cols(nchw ? N : C),
        stride(dense ? cols : ((cols * sizeof(T) + 8 + 15) / 16 * 16) / sizeof(T)),
        rows(static_cast<size_t>(B * (nchw ? C : N)), static_cast<size_t>(cols), stride),
        strides(nchw ? ca::Strides{C * (int64_t)stride, (int64_t)stride, 1}
                     : ca::Strides{N * (int64_t)stride, 1, (int64_t)stride}) {}
  T& at(int64_t b, int64_t c, int64_t n) {
    return rows.data()[b * strides.b + c * strides.c + n * strides.n];
  }
  int64_t cols;
  size_t stride;
  PaddedRows<T> rows;
  ca::Strides strides;
};

template <typename T>
std::vector<T> unwritten(int64_t n) {
  std::vector<T> v(static_cast<size_t>(n > 0 ? n : 1));
  std::memset(v.data(), 0xFF, v.size() * sizeof(T));
  return v;
}

double act(bool silu, double h) { return silu ? h / (1 + std::exp(-h)) : (h > 0 ? h : 0); }
double act_grad(bool silu, double h) {
  if (!silu) return h > 0 ? 1 : 0;
  const double s = 1 / (1 + std::exp(-h));
  return s * (1 + h * (1 - s));
}
double gate(bool hard, double u) {
  return hard ? std::min(std::max(u + 3, 0.0), 6.0) / 6 : 1 / (1 + std::exp(-u));
}
double gate_grad(bool hard, double u) {
  if (hard) return (u > -3 && u < 3) ? 1.0 / 6 : 0;
  const double g = 1 / (1 + std::exp(-u));
  return g * (1 - g);
}

class Check {
 public:
  Check(double atol, double rtol) : atol_(atol), rtol_(rtol) {}
  void close(double got, double want, const char* what, int64_t index) {
    if (std::isfinite(got) && std::fabs(got - want) <= atol_ + rtol_ * std::fabs(want)) return;
    if (failures_++ < 8) {
      std::printf("%s[%lld]: got %.8g, want %.8g\n", what, static_cast<long long>(index), got, want);
    }
  }
  int failures() const { return failures_; }

 private:
  double atol_, rtol_;
  int failures_ = 0;
};

template <typename T, typename W>
int run(const std::string& name, const Case& k, bool nchw, bool dense, DType dtype, DType wdtype,
        double atol, double rtol) {
  const int64_t B = k.B, C = k.C, N = k.H * k.W, R = k.R;
  const bool hard = k.silu_hardsigmoid, silu = k.silu_hardsigmoid;
  fusedattn::emulation::DeviceAttributes device = fusedattn::emulation::device_attributes();
  device.l2_cache_bytes = k.l2_bytes;
  fusedattn::emulation::set_device_attributes(device);
  Random random(7);
  Strided<T> x(B, C, N, nchw, dense), y(B, C, N, nchw, dense), gy(B, C, N, nchw, dense),
      gx(B, C, N, nchw, dense);
  std::vector<double> x64(B * C * N), gy64(B * C * N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t n = 0; n < N; ++n) {
        x.at(b, c, n) = to_storage<T>(random.next() + 0.3);
        x64[(b * C + c) * N + n] = to_double(x.at(b, c, n));
        gy.at(b, c, n) = to_storage<T>(random.next());
        gy64[(b * C + c) * N + n] = to_double(gy.at(b, c, n));
      }
  // Parameters in W, scaled so the gate is not saturated; their float64 values.
  auto params = [&](int64_t n, double scale, std::vector<W>& stored, std::vector<double>& exact) {
    stored.resize(n), exact.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      stored[i] = to_storage<W>(random.next() * scale);
      exact[i] = to_double(stored[i]);
    }
  };
  std::vector<W> w1, b1, w2, b2;
  std::vector<double> w1d, b1d(R, 0.0), w2d, b2d(C, 0.0);
  params(R * C, 1.0 / std::sqrt((double)C), w1, w1d);
  params(C * R, 1.0 / std::sqrt((double)R), w2, w2d);
  if (k.biases) params(R, 0.3, b1, b1d), params(C, 0.3, b2, b2d);

  // float64 reference.
  std::vector<double> s(B * C), h(B * R), u(B * C), yd(B * C * N), gxd(B * C * N);
  std::vector<double> gw1(R * C, 0.0), gb1(R, 0.0), gw2(C * R, 0.0), gb2(C, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> z(R), d(C, 0.0), du(C), dz(R, 0.0), dh(R), ds(C, 0.0);
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t n = 0; n < N; ++n) s[b * C + c] += x64[(b * C + c) * N + n] / N;
    }
    for (int64_t r = 0; r < R; ++r) {
      h[b * R + r] = b1d[r];
      for (int64_t c = 0; c < C; ++c) h[b * R + r] += w1d[r * C + c] * s[b * C + c];
      z[r] = act(silu, h[b * R + r]);
    }
    for (int64_t c = 0; c < C; ++c) {
      u[b * C + c] = b2d[c];
      for (int64_t r = 0; r < R; ++r) u[b * C + c] += w2d[c * R + r] * z[r];
      const double g = gate(hard, u[b * C + c]);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t i = (b * C + c) * N + n;
        yd[i] = x64[i] * g;
        d[c] += gy64[i] * x64[i];
      }
      du[c] = d[c] * gate_grad(hard, u[b * C + c]);
      gb2[c] += du[c];
      for (int64_t r = 0; r < R; ++r) dz[r] += w2d[c * R + r] * du[c], gw2[c * R + r] += du[c] * z[r];
    }
    for (int64_t r = 0; r < R; ++r) {
      dh[r] = dz[r] * act_grad(silu, h[b * R + r]);
      gb1[r] += dh[r];
      for (int64_t c = 0; c < C; ++c) ds[c] += w1d[r * C + c] * dh[r], gw1[r * C + c] += dh[r] * s[b * C + c];
    }
    for (int64_t c = 0; c < C; ++c) {
      const double g = gate(hard, u[b * C + c]);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t i = (b * C + c) * N + n;
        gxd[i] = gy64[i] * g + ds[c] / N;
      }
    }
  }

  auto squeezed = unwritten<float>(B * C), hidden = unwritten<float>(B * R);
  auto gate_logits = unwritten<float>(B * C);
  const ca::Weights weights{w1.data(), k.biases ? b1.data() : nullptr, w2.data(),
                            k.biases ? b2.data() : nullptr};
  const ca::Activation activation = silu ? ca::Activation::kSiLU : ca::Activation::kReLU;
  const ca::Gate g = hard ? ca::Gate::kHardSigmoid : ca::Gate::kSigmoid;
  const bool pixel_rows = nchw || N == 1 ? !(N == 1 && !nchw) : false;
  const int64_t elem = sizeof(T);
  const bool vectors = !nchw && C % (16 / elem) == 0;
  const ca::cuda::DeviceLimits info = ca::cuda::device_limits(0);

  ca::ForwardParams fp{x.rows.data(), y.rows.data(), x.strides, y.strides, B, C, N, R, weights,
                       squeezed.data(), hidden.data(), gate_logits.data(), activation, g};
  const ca::cuda::SqueezeLayout layout{pixel_rows, vectors, !k.misaligned_rows};
  const ca::cuda::Plan fplan = ca::cuda::make_plan(B, C, N, elem, 1, layout, info);
  auto fwork = unwritten<float>(ca::cuda::workspace_floats(fplan, C));
  ca::cuda::launch_forward(fp, dtype, wdtype, fplan, fwork.data(), nullptr);

  auto gw1o = unwritten<float>(R * C), gb1o = unwritten<float>(R), gw2o = unwritten<float>(C * R);
  auto gb2o = unwritten<float>(C), dh_s = unwritten<float>(B * R), du_s = unwritten<float>(B * C);
  auto z_s = unwritten<float>(B * R);
  ca::BackwardParams bp{gy.rows.data(), x.rows.data(), gx.rows.data(), gy.strides, x.strides,
                        gx.strides, B, C, N, R, weights, squeezed.data(), hidden.data(),
                        gate_logits.data(), gw1o.data(), gb1o.data(), gw2o.data(), gb2o.data(),
                        dh_s.data(), du_s.data(), z_s.data(), activation, g};
  const ca::cuda::Plan bplan = ca::cuda::make_plan(B, C, N, elem, 2, layout, info);
  auto bwork = unwritten<float>(ca::cuda::workspace_floats(bplan, C));
  ca::cuda::launch_backward(bp, dtype, wdtype, bplan, bwork.data(), nullptr);

  Check check(atol, rtol);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t n = 0; n < N; ++n) {
        const int64_t i = (b * C + c) * N + n;
        check.close(to_double(y.at(b, c, n)), yd[i], "y", i);
        check.close(to_double(gx.at(b, c, n)), gxd[i], "grad_x", i);
      }
  for (int64_t i = 0; i < B * C; ++i) {
    check.close(squeezed[i], s[i], "squeezed", i);
    check.close(gate_logits[i], u[i], "gate_logits", i);
  }
  for (int64_t i = 0; i < B * R; ++i) check.close(hidden[i], h[i], "hidden", i);
  // The parameters' gradients sum over B N products: scaled tolerance.
  Check sums(atol * N, rtol);
  for (int64_t i = 0; i < R * C; ++i) sums.close(gw1o[i], gw1[i], "grad_w1", i);
  for (int64_t i = 0; i < C * R; ++i) sums.close(gw2o[i], gw2[i], "grad_w2", i);
  for (int64_t i = 0; i < R; ++i) sums.close(gb1o[i], gb1[i], "grad_b1", i);
  for (int64_t i = 0; i < C; ++i) sums.close(gb2o[i], gb2[i], "grad_b2", i);
  const int failures = check.failures() + sums.failures();
  std::printf("%s %s%s: %s (%d mismatches)\n", name.c_str(), nchw ? "nchw" : "nhwc",
              dense ? "_dense" : "", failures ? "FAILED" : "ok", failures);
  return failures ? 1 : 0;
}

template <typename T>
int run_weights(const std::string& name, const Case& k, bool nchw, bool dense, DType dtype,
                double atol, double rtol) {
  if (k.float_weights || dtype == DType::Float) {
    return run<T, float>(name, k, nchw, dense, dtype, DType::Float, atol, rtol);
  }
  return run<T, T>(name, k, nchw, dense, dtype, dtype, atol, rtol);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || !kCases.count(argv[1])) {
    std::fprintf(stderr, "usage: %s <case> <float32|bfloat16|float16> "
                 "<nchw|nhwc|nchw_dense|nhwc_dense>; cases:", argv[0]);
    for (const auto& entry : kCases) std::fprintf(stderr, " %s", entry.first.c_str());
    std::fprintf(stderr, "\n");
    return 2;
  }
  const Case& k = kCases.at(argv[1]);
  const std::string dtype = argv[2];
  const std::string layout = argv[3];
  const bool nchw = layout.rfind("nchw", 0) == 0;
  const bool dense = layout.size() > 6 && layout.substr(layout.size() - 6) == "_dense";
  try {
    if (dtype == "float32") return run_weights<float>(argv[1], k, nchw, dense, DType::Float, 1e-4, 1e-4);
    if (dtype == "bfloat16") return run_weights<__nv_bfloat16>(argv[1], k, nchw, dense, DType::BFloat16, 2e-2, 2e-2);
    if (dtype == "float16") return run_weights<__half>(argv[1], k, nchw, dense, DType::Half, 4e-3, 4e-3);
  } catch (const std::exception& error) {
    std::printf("%s\n", error.what());
    return 1;
  }
  std::fprintf(stderr, "unknown dtype %s\n", dtype.c_str());
  return 2;
}
