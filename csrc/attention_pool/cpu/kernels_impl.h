// Fused CPU kernels of attention pooling (docs/attention_pool.md), one sample at a time. Per
// sample the forward reads the features once (sigmoid, GAP-softmax importance, pooling and
// diversity together) and the backward reads them once more while writing their gradient.
//
// Included by kernels_<isa>.cpp after common/cpu/target_<isa>.h, which sets the namespace and
// the target flags. It includes nothing but C headers and our own, and every function has
// internal linkage, so no inline code compiled for one instruction set can be picked by the
// linker for another.
#pragma once

#ifndef FUSEDATTN_CPU_ISA
#error "include common/cpu/target_<isa>.h before kernels_impl.h"
#endif

#include "../../common/cpu/vec.h"
#include "../math.h"
#include "kernels.h"

namespace fusedattn {
namespace attention_pool {
namespace cpu {
namespace FUSEDATTN_CPU_ISA {
namespace {

using namespace ::fusedattn::cpu::FUSEDATTN_CPU_ISA;
using ::fusedattn::cpu::Acc;
namespace fm = ::fusedattn::attention_pool::math;

// One sweep over a feature row x (length n) for all K maps (rows ld apart in gw and sig):
//   gw[k, :] += g[k] x      (the gradient of the maps, accumulated over channels)
//   y = sum_k h[k] sig[k, :] (this channel's feature gradient)
template <typename acc_t>
void rank1_update_and_combine(acc_t* __restrict gw, const acc_t* __restrict sig, int64_t ld,
                              int64_t K, const acc_t* __restrict g, const acc_t* __restrict h,
                              const acc_t* __restrict x, int64_t n, acc_t* __restrict y) {
  using V = typename VecOf<acc_t>::type;
  constexpr int64_t L = sizeof(V) / sizeof(acc_t);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V xv = loadu<V>(x + i);
    V yv = {};
    for (int64_t k = 0; k < K; ++k) {
      const V gwv = loadu<V>(gw + k * ld + i) + g[k] * xv;
      memcpy(gw + k * ld + i, &gwv, sizeof(V));
      yv += h[k] * loadu<V>(sig + k * ld + i);
    }
    memcpy(y + i, &yv, sizeof(V));
  }
  for (; i < n; ++i) {
    acc_t yi = 0;
    for (int64_t k = 0; k < K; ++k) {
      gw[k * ld + i] += g[k] * x[i];
      yi += h[k] * sig[k * ld + i];
    }
    y[i] = yi;
  }
}

// Pixels per block when the backward sweeps NCHW rows: the two [K, block] slices of the maps
// it reads and updates stay in a 32 KB L1 cache, whatever N is.
template <typename acc_t>
int64_t pixel_block(int64_t K, int64_t N) {
  int64_t nb = (12 * 1024) / (K * static_cast<int64_t>(sizeof(acc_t)));
  nb = nb < 64 ? 64 : nb / 64 * 64;
  return nb < N ? nb : N;
}

// One map's statistics from its logits x[0:n]: sig = sigmoid(x), returns the global average of
// sig and writes the log-sum-exp of x (two passes, max then sum, so both loops vectorize).
template <typename acc_t>
acc_t map_statistics(const acc_t* __restrict x, int64_t n, acc_t* __restrict sig, acc_t* lse) {
  acc_t m = x[0];
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  acc_t gap = 0, sum = 0;
#pragma omp simd reduction(+ : gap, sum)
  for (int64_t i = 0; i < n; ++i) {
    sig[i] = fm::sigmoid(x[i]);
    gap += sig[i];
    sum += fm::exp_(x[i] - m);
  }
  *lse = fm::softmax_logsumexp(fm::SoftmaxState<acc_t>{m, sum});
  return gap / acc_t(n);
}

// The pixel max of D = sum_n max_k s[k] p[k, n], scanning k upwards (torch.max's tie rule:
// a later map wins only when strictly larger). best[n] gets the max, winner[n] its map.
template <typename acc_t>
void pixel_max(const acc_t* __restrict logit, const acc_t* s, const acc_t* lse, int64_t K,
               int64_t N, acc_t* __restrict best, int32_t* __restrict winner) {
#pragma omp simd
  for (int64_t n = 0; n < N; ++n) {
    best[n] = fm::weighted_prob(s[0], logit[n], lse[0]);
    winner[n] = 0;
  }
  for (int64_t k = 1; k < K; ++k) {
    const acc_t sk = s[k], lk = lse[k];
    const int32_t k32 = static_cast<int32_t>(k);
#pragma omp simd
    for (int64_t n = 0; n < N; ++n) {
      const acc_t cand = fm::weighted_prob(sk, logit[k * N + n], lk);
      const bool wins = fm::replaces_winner(cand, best[n]);
      best[n] = wins ? cand : best[n];
      winner[n] = wins ? k32 : winner[n];
    }
  }
}

// Softmax over the K global averages, in place: g -> s.
template <typename acc_t>
void softmax_inplace(acc_t* x, int64_t K) {
  fm::SoftmaxState<acc_t> st = fm::softmax_empty<acc_t>();
  for (int64_t k = 0; k < K; ++k) st = fm::softmax_push(st, x[k]);
  const acc_t lse = fm::softmax_logsumexp(st);
  for (int64_t k = 0; k < K; ++k) x[k] = fm::pixel_prob(x[k], lse);
}

}  // namespace

template <typename scalar_t>
void forward(const ForwardParams& p, int64_t b_begin, int64_t b_end, void* workspace) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t C = p.C, K = p.K, N = p.N;
  const bool channel_rows = rows_are_channels(p.sfc, p.sfn, p.N);
  const acc_t alpha = fm::pool_scale<acc_t>(p.mean_pool, N);
  const scalar_t* f = static_cast<const scalar_t*>(p.features);
  const scalar_t* a = static_cast<const scalar_t*>(p.logits);
  scalar_t* v = static_cast<scalar_t*>(p.pooled);
  acc_t* s_all = static_cast<acc_t*>(p.importance);
  acc_t* lse_all = static_cast<acc_t*>(p.logsumexp);
  acc_t* div_all = static_cast<acc_t*>(p.diversity);
  acc_t* logit = static_cast<acc_t*>(workspace);  // [K, N]
  acc_t* w = logit + K * N;                         // [K, N]
  acc_t* row = w + K * N;                           // [max(N, C)]
  acc_t* best = row + (N > C ? N : C);              // [max(N, K)]
  acc_t* v_acc = best + (N > K ? N : K);            // [K, C]
  acc_t* lse_scratch = v_acc + K * C;               // [K]: the statistics nobody saves
  int32_t* winner = reinterpret_cast<int32_t*>(lse_scratch + K);  // [N]

  for (int64_t b = b_begin; b < b_end; ++b) {
    const scalar_t* fb = f + b * p.sfb;
    acc_t* s = s_all + b * K;
    acc_t* lse = lse_all != nullptr ? lse_all + b * K : lse_scratch;
    // Per-map statistics: sigmoid maps, their global averages, the pixel-softmax log-sum-exp.
    for (int64_t k = 0; k < K; ++k) {
      load_row(a + b * p.sab + k * p.sak, p.san, N, logit + k * N);
      s[k] = map_statistics(logit + k * N, N, w + k * N, lse + k);
    }
    softmax_inplace(s, K);
    for (int64_t k = 0; k < K; ++k) {
      const acc_t sk = s[k];
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) w[k * N + n] *= sk;
    }
    if (div_all != nullptr) {
      pixel_max(logit, s, lse, K, N, best, winner);
      acc_t D = 0;
#pragma omp simd reduction(+ : D)
      for (int64_t n = 0; n < N; ++n) D += best[n];
      div_all[b] = acc_t(1) - D;
    }
    // Pooling v[k, c] = alpha sum_n w[k, n] f[c, n]: the only pass over the features.
    scalar_t* vb = v + b * K * C;
    if (!channel_rows) {
      // Whole rows: blocking over pixels measured slower here (more horizontal sums).
      for (int64_t c = 0; c < C; ++c) {
        const acc_t* x = row_view(fb + c * p.sfc, p.sfn, N, row);
        dot_many(w, N, x, N, K, best);  // best[0:K] is free scratch here
        for (int64_t k = 0; k < K; ++k) vb[k * C + c] = from_acc<scalar_t>(alpha * best[k]);
      }
    } else {
      for (int64_t i = 0; i < K * C; ++i) v_acc[i] = 0;
      for (int64_t n = 0; n < N; ++n) {
        const acc_t* x = row_view(fb + n * p.sfn, p.sfc, C, row);
        for (int64_t k = 0; k < K; ++k) axpy(w[k * N + n], x, v_acc + k * C, C);
      }
      for (int64_t i = 0; i < K * C; ++i) vb[i] = from_acc<scalar_t>(alpha * v_acc[i]);
    }
  }
}

template <typename scalar_t>
void backward(const BackwardParams& p, int64_t b_begin, int64_t b_end, void* workspace) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t C = p.C, K = p.K, N = p.N;
  const bool channel_rows = rows_are_channels(p.sfc, p.sfn, p.N);
  const acc_t alpha = fm::pool_scale<acc_t>(p.mean_pool, N);
  const acc_t inv_n = acc_t(1) / acc_t(N);
  const bool has_gd = p.grad_diversity != nullptr;
  const scalar_t* f = static_cast<const scalar_t*>(p.features);
  const scalar_t* a = static_cast<const scalar_t*>(p.logits);
  const scalar_t* gv = static_cast<const scalar_t*>(p.grad_pooled);
  const acc_t* gs_all = static_cast<const acc_t*>(p.grad_importance);
  const acc_t* gd_all = static_cast<const acc_t*>(p.grad_diversity);
  const acc_t* s_all = static_cast<const acc_t*>(p.importance);
  const acc_t* lse_all = static_cast<const acc_t*>(p.logsumexp);
  scalar_t* gf = static_cast<scalar_t*>(p.grad_features);
  scalar_t* ga = static_cast<scalar_t*>(p.grad_logits);
  const int64_t row_len = N > C ? N : C;
  acc_t* sig = static_cast<acc_t*>(workspace);                         // [K, N]
  acc_t* prob = sig + K * N;                                           // [K, N]
  acc_t* gw = prob + K * N;                                            // [K, N]
  acc_t* gv_acc = gw + K * N;                                          // [K, C]
  acc_t* row = gv_acc + K * C;                                         // [max(N, C)]
  acc_t* grow = row + row_len;                                         // [max(N, C)]
  acc_t* win = grow + row_len;                                         // [K]
  acc_t* gs_tot = win + K;                                             // [K]
  acc_t* gk = gs_tot + K;                                              // [K]
  acc_t* hk = gk + K;                                                  // [K]
  int32_t* winner = reinterpret_cast<int32_t*>(hk + K);                // [N]

  for (int64_t b = b_begin; b < b_end; ++b) {
    const acc_t* s = s_all + b * K;
    const acc_t* lse = lse_all + b * K;
    const acc_t gd = has_gd ? gd_all[b] : acc_t(0);
    // Recompute the maps from the logits and the saved statistics; k*(n) by the same
    // comparison, in the same order, as the forward's pixel max (grow is free scratch here).
    for (int64_t k = 0; k < K; ++k) load_row(a + b * p.sab + k * p.sak, p.san, N, prob + k * N);
    if (has_gd) pixel_max(prob, s, lse, K, N, grow, winner);
    for (int64_t k = 0; k < K; ++k) {
      acc_t* x = prob + k * N;
      acc_t* sg = sig + k * N;
      const acc_t lk = lse[k];
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) {
        sg[n] = fm::sigmoid(x[n]);
        x[n] = fm::pixel_prob(x[n], lk);
      }
    }
    for (int64_t i = 0; i < K * C; ++i) gv_acc[i] = alpha * to_acc(gv[b * K * C + i]);
    for (int64_t i = 0; i < K * N; ++i) gw[i] = 0;
    // One pass over the features: gw[k, n] = alpha sum_c gv[k, c] f[c, n] and
    // gf[c, n] = alpha sum_k gv[k, c] s[k] sig[k, n].
    const scalar_t* fb = f + b * p.sfb;
    scalar_t* gfb = gf + b * p.gfb;
    if (!channel_rows) {
      const int64_t nb = pixel_block<acc_t>(K, N);
      for (int64_t n0 = 0; n0 < N; n0 += nb) {
        const int64_t len = N - n0 < nb ? N - n0 : nb;
        for (int64_t c = 0; c < C; ++c) {
          const acc_t* x = row_view(fb + c * p.sfc + n0 * p.sfn, p.sfn, len, row);
          for (int64_t k = 0; k < K; ++k) {
            gk[k] = gv_acc[k * C + c];
            hk[k] = gk[k] * s[k];
          }
          rank1_update_and_combine(gw + n0, sig + n0, N, K, gk, hk, x, len, grow);
          store_row(grow, len, gfb + c * p.gfc + n0 * p.gfn, p.gfn);
        }
      }
    } else {
      for (int64_t n = 0; n < N; ++n) {
        const acc_t* x = row_view(fb + n * p.sfn, p.sfc, C, row);
        for (int64_t c = 0; c < C; ++c) grow[c] = 0;
        dot_many(gv_acc, C, x, C, K, gk);
        for (int64_t k = 0; k < K; ++k) {
          gw[k * N + n] = gk[k];
          axpy(s[k] * sig[k * N + n], gv_acc + k * C, grow, C);
        }
        store_row(grow, C, gfb + n * p.gfn, p.gfc);
      }
    }
    // The small [K, N] epilogue: recalibration, importance softmax and diversity gradients.
    acc_t weighted_sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      acc_t won = 0;  // sum of p[k, n] over the pixels k wins
      if (has_gd) {
        const int32_t k32 = static_cast<int32_t>(k);
#pragma omp simd reduction(+ : won)
        for (int64_t n = 0; n < N; ++n) won += winner[n] == k32 ? prob[k * N + n] : acc_t(0);
      }
      win[k] = won;
      gs_tot[k] = gs_all[b * K + k] + dot(gw + k * N, sig + k * N, N) - gd * win[k];
      weighted_sum += s[k] * gs_tot[k];
    }
    for (int64_t k = 0; k < K; ++k) {
      const acc_t gg = fm::importance_softmax_grad(s[k], gs_tot[k], weighted_sum);
      const acc_t gp_win = -gd * s[k];  // gp[k, n] where k wins pixel n, 0 elsewhere
      const acc_t p_dot_gp = gp_win * win[k];
      const int32_t k32 = static_cast<int32_t>(k);
      const acc_t sk = s[k];
      acc_t* out = grow;  // free scratch again: this map's logit gradient before the store
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) {
        const acc_t gsig = fm::sigmoid_map_grad(sk, gw[k * N + n], gg, inv_n);
        const acc_t gp = (has_gd && winner[n] == k32) ? gp_win : acc_t(0);
        const acc_t pr = has_gd ? prob[k * N + n] : acc_t(0);
        out[n] = fm::logit_grad(gsig, sig[k * N + n], pr, gp, p_dot_gp);
      }
      store_row(out, N, ga + b * p.gab + k * p.gak, p.gan);
    }
  }
}

#define FUSEDATTN_INSTANTIATE_CPU_KERNELS(scalar_t)                                             \
  template void forward<scalar_t>(const ForwardParams&, int64_t, int64_t, void*);               \
  template void backward<scalar_t>(const BackwardParams&, int64_t, int64_t, void*);

FUSEDATTN_INSTANTIATE_CPU_KERNELS(float)
FUSEDATTN_INSTANTIATE_CPU_KERNELS(double)
FUSEDATTN_INSTANTIATE_CPU_KERNELS(Half)
FUSEDATTN_INSTANTIATE_CPU_KERNELS(BFloat16)

}  // namespace FUSEDATTN_CPU_ISA
}  // namespace cpu
}  // namespace attention_pool
}  // namespace fusedattn
