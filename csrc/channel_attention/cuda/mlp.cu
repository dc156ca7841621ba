// The small kernels between the streaming passes, and the order of the launches.
//
// channel_attention_mlp_fwd_kernel: per kSamplesPerBlock samples, s = (sum of the squeeze's
//   splits, in order) / N, hidden = fc1(s) (a warp per bottleneck channel, coalesced rows of
//   fc1), gate_logits = fc2(act(hidden)) (a thread per channel), scale = gate(gate_logits).
// channel_attention_mlp_bwd_kernel: the spec's backward through the gate, fc2, the activation and
//   fc1, per kSamplesPerBlock samples: scale = g, shift = ds / N for the excite that writes
//   grad_x, and the per-sample dL/dgate_logits, dL/dhidden and act(hidden) the parameters'
//   gradients are summed from.
// channel_attention_weight_grad_kernel: each parameter gradient element summed over the batch
//   in order (deterministic, no atomics).
#include "../../common/cuda/convert.cuh"
#include "../../common/cuda/reduce.cuh"
#include "../../common/cuda/runtime.cuh"
#include "../math.h"
#include "kernels.h"

namespace fusedattn {
namespace channel_attention {
namespace cuda {

using namespace ::fusedattn::cuda;
namespace cm = ::fusedattn::channel_attention::math;

namespace {

template <typename W>
struct MlpArgs {
  const float* partials;  // (samples, splits, C): the squeeze's (forward) or the gate gradient's
  int64_t splits, samples, C, N, R;
  const W* w1;  // (R, C)
  const W* b1;  // (R,) or nullptr
  const W* w2;  // (C, R)
  const W* b2;  // (C,) or nullptr
  // Forward: written when not nullptr (the statistics a backward needs). Backward: read.
  float* squeezed;     // (samples, C)
  float* hidden;       // (samples, R)
  float* gate_logits;  // (samples, C)
  float* scale;        // (samples, C): the excite's factor, g
  float* shift;        // (samples, C): backward only, ds / N
  float* grad_hidden;       // (samples, R), backward
  float* grad_gate_logits;  // (samples, C), backward
  float* activated;         // (samples, R), backward
  Activation activation;
  Gate gate;
};

// The sum of one (sample, channel)'s partials over the splits, in split order.
__device__ __forceinline__ float sum_splits(const float* partials, int64_t splits, int64_t C,
                                            int64_t sample, int64_t c) {
  float sum = 0.f;
  for (int64_t i = 0; i < splits; ++i) sum += partials[(sample * splits + i) * C + c];
  return sum;
}

template <typename W>
__global__ void __launch_bounds__(kThreads) channel_attention_mlp_fwd_kernel(MlpArgs<W> p) {
  float* s = dynamic_shared_memory<float>();  // [kSamplesPerBlock][C]
  float* z = s + kSamplesPerBlock * p.C;      // [kSamplesPerBlock][R]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kSamplesPerBlock;
  const float inv_n = 1.f / static_cast<float>(p.N);
  for (int64_t i = threadIdx.x; i < kSamplesPerBlock * p.C; i += kThreads) {
    const int64_t j = i / p.C, c = i % p.C, b = first + j;
    const float mean = b < p.samples ? sum_splits(p.partials, p.splits, p.C, b, c) * inv_n : 0.f;
    s[i] = mean;
    if (b < p.samples && p.squeezed != nullptr) p.squeezed[b * p.C + c] = mean;
  }
  __syncthreads();
  for (int64_t r = warp; r < p.R; r += kWarps) {  // hidden[r] = b1[r] + sum_c w1[r, c] s[c]
    float acc[kSamplesPerBlock] = {};
    for (int64_t c = lane; c < p.C; c += 32) {
      const float w = to_float(p.w1[r * p.C + c]);
#pragma unroll
      for (int j = 0; j < kSamplesPerBlock; ++j) acc[j] += w * s[j * p.C + c];
    }
    const float bias = p.b1 != nullptr ? to_float(p.b1[r]) : 0.f;
#pragma unroll
    for (int j = 0; j < kSamplesPerBlock; ++j) {
      const float h = warp_sum(acc[j]) + bias;
      const int64_t b = first + j;
      if (lane == 0) {
        z[j * p.R + r] = cm::activate(p.activation, h);
        if (b < p.samples && p.hidden != nullptr) p.hidden[b * p.R + r] = h;
      }
    }
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < p.C; c += kThreads) {  // u[c] = b2[c] + sum_r w2[c, r] z[r]
    float acc[kSamplesPerBlock] = {};
    for (int64_t r = 0; r < p.R; ++r) {
      const float w = to_float(p.w2[c * p.R + r]);
#pragma unroll
      for (int j = 0; j < kSamplesPerBlock; ++j) acc[j] += w * z[j * p.R + r];
    }
    const float bias = p.b2 != nullptr ? to_float(p.b2[c]) : 0.f;
#pragma unroll
    for (int j = 0; j < kSamplesPerBlock; ++j) {
      const int64_t b = first + j;
      if (b >= p.samples) break;
      const float u = acc[j] + bias;
      p.scale[b * p.C + c] = cm::gate_value(p.gate, u);
      if (p.gate_logits != nullptr) p.gate_logits[b * p.C + c] = u;
    }
  }
}

template <typename W>
__global__ void __launch_bounds__(kThreads) channel_attention_mlp_bwd_kernel(MlpArgs<W> p) {
  float* du = dynamic_shared_memory<float>();  // [kSamplesPerBlock][C]
  float* dh = du + kSamplesPerBlock * p.C;     // [kSamplesPerBlock][R]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kSamplesPerBlock;
  for (int64_t i = threadIdx.x; i < kSamplesPerBlock * p.C; i += kThreads) {
    const int64_t j = i / p.C, c = i % p.C, b = first + j;
    float grad = 0.f;
    if (b < p.samples) {  // du = (sum_n gy x) gate'(u); the excite's scale is g itself
      const float u = p.gate_logits[b * p.C + c];
      const float g = cm::gate_value(p.gate, u);
      grad = sum_splits(p.partials, p.splits, p.C, b, c) * cm::gate_grad(p.gate, u, g);
      p.scale[b * p.C + c] = g;
      p.grad_gate_logits[b * p.C + c] = grad;
    }
    du[i] = grad;
  }
  __syncthreads();
  for (int64_t r = warp; r < p.R; r += kWarps) {  // dz[r] = sum_c w2[c, r] du[c]
    float acc[kSamplesPerBlock] = {};
    for (int64_t c = lane; c < p.C; c += 32) {
      const float w = to_float(p.w2[c * p.R + r]);
#pragma unroll
      for (int j = 0; j < kSamplesPerBlock; ++j) acc[j] += w * du[j * p.C + c];
    }
#pragma unroll
    for (int j = 0; j < kSamplesPerBlock; ++j) {
      const float dz = warp_sum(acc[j]);
      const int64_t b = first + j;
      if (lane == 0) {
        float grad = 0.f;
        if (b < p.samples) {
          const float h = p.hidden[b * p.R + r];
          grad = dz * cm::activation_grad(p.activation, h);
          p.grad_hidden[b * p.R + r] = grad;
          p.activated[b * p.R + r] = cm::activate(p.activation, h);
        }
        dh[j * p.R + r] = grad;
      }
    }
  }
  __syncthreads();
  const float inv_n = 1.f / static_cast<float>(p.N);
  for (int64_t c = threadIdx.x; c < p.C; c += kThreads) {  // ds[c] = sum_r w1[r, c] dh[r]
    float acc[kSamplesPerBlock] = {};
    for (int64_t r = 0; r < p.R; ++r) {
      const float w = to_float(p.w1[r * p.C + c]);
#pragma unroll
      for (int j = 0; j < kSamplesPerBlock; ++j) acc[j] += w * dh[j * p.R + r];
    }
#pragma unroll
    for (int j = 0; j < kSamplesPerBlock; ++j) {
      const int64_t b = first + j;
      if (b < p.samples) p.shift[b * p.C + c] = acc[j] * inv_n;
    }
  }
}

struct WeightGradArgs {
  int64_t B, C, R;
  const float* squeezed;          // (B, C)
  const float* grad_hidden;       // (B, R)
  const float* grad_gate_logits;  // (B, C)
  const float* activated;         // (B, R)
  float* grad_w1;                 // (R, C)
  float* grad_b1;                 // (R,)
  float* grad_w2;                 // (C, R)
  float* grad_b2;                 // (C,)
};

// sum over b of x[b sx] * y[b sy] (y nullptr: of x[b sx]), in order of b: kWeightGradUnroll
// samples' loads issued before their additions.
__device__ __forceinline__ float ordered_sum(const float* x, int64_t sx, const float* y,
                                             int64_t sy, int64_t B) {
  float sum = 0.f;
  int64_t b = 0;
  for (; b + kWeightGradUnroll <= B; b += kWeightGradUnroll) {
    float vx[kWeightGradUnroll], vy[kWeightGradUnroll];
#pragma unroll
    for (int j = 0; j < kWeightGradUnroll; ++j) {
      vx[j] = x[(b + j) * sx];
      vy[j] = y != nullptr ? y[(b + j) * sy] : 1.f;
    }
#pragma unroll
    for (int j = 0; j < kWeightGradUnroll; ++j) sum += vx[j] * vy[j];
  }
  for (; b < B; ++b) sum += x[b * sx] * (y != nullptr ? y[b * sy] : 1.f);
  return sum;
}

// One thread per output element, [gw1 | gw2 | gb1 | gb2], each summed over b in order.
// Consecutive threads take consecutive columns: the per-sample rows they read are coalesced.
__global__ void __launch_bounds__(kThreads) channel_attention_weight_grad_kernel(WeightGradArgs p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t rc = p.R * p.C;
  if (i >= 2 * rc + p.R + p.C) return;
  if (i < rc) {  // gw1[r, c] = sum_b dh[b, r] s[b, c]
    const int64_t r = i / p.C, c = i % p.C;
    p.grad_w1[i] = ordered_sum(p.grad_hidden + r, p.R, p.squeezed + c, p.C, p.B);
  } else if (i < 2 * rc) {  // gw2[c, r] = sum_b du[b, c] z[b, r]
    const int64_t c = (i - rc) / p.R, r = (i - rc) % p.R;
    p.grad_w2[i - rc] = ordered_sum(p.grad_gate_logits + c, p.C, p.activated + r, p.R, p.B);
  } else if (i < 2 * rc + p.R) {  // gb1[r] = sum_b dh[b, r]
    const int64_t r = i - 2 * rc;
    p.grad_b1[r] = ordered_sum(p.grad_hidden + r, p.R, nullptr, 0, p.B);
  } else {  // gb2[c] = sum_b du[b, c]
    const int64_t c = i - 2 * rc - p.R;
    p.grad_b2[c] = ordered_sum(p.grad_gate_logits + c, p.C, nullptr, 0, p.B);
  }
}

template <typename W>
MlpArgs<W> mlp_args(const Weights& w, const float* partials, const Plan& plan, int64_t samples,
                    int64_t C, int64_t N, int64_t R, Activation activation, Gate gate) {
  MlpArgs<W> a{};
  a.partials = partials;
  a.splits = plan.splits, a.samples = samples, a.C = C, a.N = N, a.R = R;
  a.w1 = static_cast<const W*>(w.w1), a.b1 = static_cast<const W*>(w.b1);
  a.w2 = static_cast<const W*>(w.w2), a.b2 = static_cast<const W*>(w.b2);
  a.activation = activation, a.gate = gate;
  return a;
}

template <typename T>
T* offset(T* p, int64_t elements) {
  return p != nullptr ? p + elements : nullptr;
}

const void* offset_bytes(const void* p, int64_t bytes) {
  return static_cast<const char*>(p) + bytes;
}
void* offset_bytes(void* p, int64_t bytes) { return static_cast<char*>(p) + bytes; }

int64_t element_bytes(DType dtype) { return dtype == DType::Float ? 4 : 2; }

dim3 grid_of(const LaunchGeometry& g) {
  return dim3(static_cast<unsigned>(g.grid_x), static_cast<unsigned>(g.grid_y));
}

}  // namespace

DeviceLimits device_limits(int device) {
  const DeviceInfo info = device_info(device);
  return {info.sm_count, info.l2_cache_bytes};
}

void launch_forward(const ForwardParams& p, DType dtype, DType weight_dtype, const Plan& plan,
                    float* workspace, cudaStream_t stream) {
  const int64_t elem = element_bytes(dtype);
  const WorkspaceLayout ws = workspace_layout(plan, p.C);
  float* partials = workspace + ws.partials;
  float* scale = workspace + ws.scale;
  for (int64_t b0 = 0; b0 < p.B; b0 += plan.chunk) {
    const int64_t samples = p.B - b0 < plan.chunk ? p.B - b0 : plan.chunk;
    const void* x = offset_bytes(p.x, b0 * p.sx.b * elem);
    launch_squeeze(x, p.sx, nullptr, p.sx, samples, p.C, p.N, plan, partials, dtype, stream);
    dispatch_dtype(weight_dtype, [&](auto type) {
      using W = typename decltype(type)::type;
      MlpArgs<W> a = mlp_args<W>(p.weights, partials, plan, samples, p.C, p.N, p.R,
                                 p.activation, p.gate);
      a.squeezed = offset(static_cast<float*>(p.squeezed), b0 * p.C);
      a.hidden = offset(static_cast<float*>(p.hidden), b0 * p.R);
      a.gate_logits = offset(static_cast<float*>(p.gate_logits), b0 * p.C);
      a.scale = scale;
      const LaunchGeometry g = mlp_geometry(samples, p.C, p.R);
      launch(channel_attention_mlp_fwd_kernel<W>, grid_of(g), dim3(g.threads), g.shared_bytes,
             stream, a);
    });
    launch_excite(x, p.sx, offset_bytes(p.y, b0 * p.sy.b * elem), p.sy, samples, p.C, p.N, scale,
                  nullptr, dtype, plan.sm_count, stream);
  }
}

void launch_backward(const BackwardParams& p, DType dtype, DType weight_dtype, const Plan& plan,
                     float* workspace, cudaStream_t stream) {
  const int64_t elem = element_bytes(dtype);
  const WorkspaceLayout ws = workspace_layout(plan, p.C);
  float* partials = workspace + ws.partials;
  float* scale = workspace + ws.scale;
  float* shift = workspace + ws.shift;
  for (int64_t b0 = 0; b0 < p.B; b0 += plan.chunk) {
    const int64_t samples = p.B - b0 < plan.chunk ? p.B - b0 : plan.chunk;
    const void* gy = offset_bytes(p.grad_y, b0 * p.sgy.b * elem);
    launch_squeeze(gy, p.sgy, offset_bytes(p.x, b0 * p.sx.b * elem), p.sx, samples, p.C, p.N,
                   plan, partials, dtype, stream);
    dispatch_dtype(weight_dtype, [&](auto type) {
      using W = typename decltype(type)::type;
      MlpArgs<W> a = mlp_args<W>(p.weights, partials, plan, samples, p.C, p.N, p.R,
                                 p.activation, p.gate);
      a.hidden = const_cast<float*>(static_cast<const float*>(p.hidden)) + b0 * p.R;
      a.gate_logits = const_cast<float*>(static_cast<const float*>(p.gate_logits)) + b0 * p.C;
      a.scale = scale, a.shift = shift;
      a.grad_hidden = static_cast<float*>(p.grad_hidden) + b0 * p.R;
      a.grad_gate_logits = static_cast<float*>(p.grad_gate_logits) + b0 * p.C;
      a.activated = static_cast<float*>(p.activated) + b0 * p.R;
      const LaunchGeometry g = mlp_geometry(samples, p.C, p.R);
      launch(channel_attention_mlp_bwd_kernel<W>, grid_of(g), dim3(g.threads), g.shared_bytes,
             stream, a);
    });
    launch_excite(gy, p.sgy, offset_bytes(p.grad_x, b0 * p.sgx.b * elem), p.sgx, samples, p.C,
                  p.N, scale, shift, dtype, plan.sm_count, stream);
  }
  const WeightGradArgs w{p.B, p.C, p.R,
                         static_cast<const float*>(p.squeezed),
                         static_cast<const float*>(p.grad_hidden),
                         static_cast<const float*>(p.grad_gate_logits),
                         static_cast<const float*>(p.activated),
                         static_cast<float*>(p.grad_w1), static_cast<float*>(p.grad_b1),
                         static_cast<float*>(p.grad_w2), static_cast<float*>(p.grad_b2)};
  const LaunchGeometry g = weight_grad_geometry(p.C, p.R);
  launch(channel_attention_weight_grad_kernel, grid_of(g), dim3(g.threads), g.shared_bytes, stream,
         w);
}

}  // namespace cuda
}  // namespace channel_attention
}  // namespace fusedattn
