// Fused CPU kernels of attention pooling (SPEC.md). Per sample, the forward reads the features
// once (sigmoid, GAP-softmax importance, pooling and diversity together) and the backward reads
// them once more while writing their gradient; samples run in parallel (at::parallel_for).
// Features are read in whichever order makes the inner loop contiguous: rows of N pixels per
// channel (NCHW) or rows of C channels per pixel (channels_last); other strides are gathered.
#include "../attention_pool.h"
#include "../attention_pool_math.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

namespace fusedattn {
namespace {

namespace fm = fusedattn::math;

template <typename acc_t>
acc_t dot(const acc_t* x, const acc_t* y, int64_t n) {
  acc_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += x[i] * y[i];
  return acc;
}

// y += alpha * x
template <typename acc_t>
void axpy(acc_t alpha, const acc_t* x, acc_t* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <typename scalar_t, typename acc_t>
void load_row(const scalar_t* src, int64_t stride, int64_t n, acc_t* dst) {
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<acc_t>(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<acc_t>(src[i * stride]);
  }
}

template <typename scalar_t, typename acc_t>
void store_row(const acc_t* src, int64_t n, scalar_t* dst, int64_t stride) {
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<scalar_t>(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i * stride] = static_cast<scalar_t>(src[i]);
  }
}

// channels_last features: the channel stride is 1, so rows of C channels are contiguous.
bool rows_are_channels(const at::Tensor& features) {
  return features.stride(1) == 1 && features.stride(2) != 1;
}

// Softmax over the K global averages, in place: g -> s.
template <typename acc_t>
void softmax_inplace(acc_t* x, int64_t K) {
  fm::SoftmaxState<acc_t> st = fm::softmax_empty<acc_t>();
  for (int64_t k = 0; k < K; ++k) st = fm::softmax_push(st, x[k]);
  const acc_t lse = fm::softmax_logsumexp(st);
  for (int64_t k = 0; k < K; ++k) x[k] = fm::pixel_prob(x[k], lse);
}

template <typename scalar_t>
void forward_kernel(const at::Tensor& features, const at::Tensor& logits, const PoolShape& sh,
                    bool compute_diversity, at::Tensor& pooled, at::Tensor& importance,
                    at::Tensor& diversity, at::Tensor& logsumexp) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t B = sh.B, C = sh.C, K = sh.K, N = sh.N;
  const bool channel_rows = rows_are_channels(features);
  const acc_t alpha = fm::pool_scale<acc_t>(sh.mean_pool, N);
  const scalar_t* f = features.const_data_ptr<scalar_t>();
  const scalar_t* a = logits.const_data_ptr<scalar_t>();
  const int64_t sfb = features.stride(0), sfc = features.stride(1), sfn = features.stride(2);
  const int64_t sab = logits.stride(0), sak = logits.stride(1), san = logits.stride(2);
  scalar_t* v = pooled.mutable_data_ptr<scalar_t>();
  acc_t* s_all = importance.mutable_data_ptr<acc_t>();
  acc_t* lse_all = logsumexp.mutable_data_ptr<acc_t>();
  acc_t* div_all = compute_diversity ? diversity.mutable_data_ptr<acc_t>() : nullptr;

  at::parallel_for(0, B, 1, [&](int64_t b_begin, int64_t b_end) {
    std::vector<acc_t> logit(K * N), w(K * N), row(std::max(N, C)), best(N);
    std::vector<acc_t> v_acc(channel_rows ? K * C : 0);
    for (int64_t b = b_begin; b < b_end; ++b) {
      const scalar_t* fb = f + b * sfb;
      acc_t* s = s_all + b * K;
      acc_t* lse = lse_all + b * K;
      // Per-map statistics: sigmoid maps, their global averages, the pixel-softmax log-sum-exp.
      for (int64_t k = 0; k < K; ++k) {
        acc_t* x = logit.data() + k * N;
        acc_t* sig = w.data() + k * N;
        load_row(a + b * sab + k * sak, san, N, x);
        fm::SoftmaxState<acc_t> st = fm::softmax_empty<acc_t>();
        acc_t gap = 0;
        for (int64_t n = 0; n < N; ++n) {
          sig[n] = fm::sigmoid(x[n]);
          gap += sig[n];
          st = fm::softmax_push(st, x[n]);
        }
        s[k] = gap / acc_t(N);
        lse[k] = fm::softmax_logsumexp(st);
      }
      softmax_inplace(s, K);
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t n = 0; n < N; ++n) w[k * N + n] *= s[k];
      }
      if (compute_diversity) {
        for (int64_t n = 0; n < N; ++n) best[n] = fm::weighted_prob(s[0], logit[n], lse[0]);
        for (int64_t k = 1; k < K; ++k) {
          for (int64_t n = 0; n < N; ++n) {
            const acc_t cand = fm::weighted_prob(s[k], logit[k * N + n], lse[k]);
            if (fm::replaces_winner(cand, best[n])) best[n] = cand;
          }
        }
        acc_t D = 0;
        for (int64_t n = 0; n < N; ++n) D += best[n];
        div_all[b] = acc_t(1) - D;
      }
      // Pooling v[k, c] = alpha * sum_n w[k, n] f[c, n]: the only pass over the features.
      scalar_t* vb = v + b * K * C;
      if (!channel_rows) {
        for (int64_t c = 0; c < C; ++c) {
          load_row(fb + c * sfc, sfn, N, row.data());
          for (int64_t k = 0; k < K; ++k) {
            vb[k * C + c] = static_cast<scalar_t>(alpha * dot(w.data() + k * N, row.data(), N));
          }
        }
      } else {
        std::fill(v_acc.begin(), v_acc.end(), acc_t(0));
        for (int64_t n = 0; n < N; ++n) {
          load_row(fb + n * sfn, sfc, C, row.data());
          for (int64_t k = 0; k < K; ++k) axpy(w[k * N + n], row.data(), v_acc.data() + k * C, C);
        }
        for (int64_t i = 0; i < K * C; ++i) vb[i] = static_cast<scalar_t>(alpha * v_acc[i]);
      }
    }
  });
}

template <typename scalar_t>
void backward_kernel(const at::Tensor& grad_pooled, const at::Tensor& grad_importance,
                     const std::optional<at::Tensor>& grad_diversity, const at::Tensor& features,
                     const at::Tensor& logits, const at::Tensor& importance,
                     const at::Tensor& logsumexp, const PoolShape& sh, at::Tensor& grad_features,
                     at::Tensor& grad_logits) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t B = sh.B, C = sh.C, K = sh.K, N = sh.N;
  const bool channel_rows = rows_are_channels(features);
  const acc_t alpha = fm::pool_scale<acc_t>(sh.mean_pool, N);
  const acc_t inv_n = acc_t(1) / acc_t(N);
  const bool has_gd = grad_diversity.has_value();
  const scalar_t* f = features.const_data_ptr<scalar_t>();
  const scalar_t* a = logits.const_data_ptr<scalar_t>();
  const scalar_t* gv = grad_pooled.const_data_ptr<scalar_t>();  // contiguous (B, K, C)
  const acc_t* gs_all = grad_importance.const_data_ptr<acc_t>();  // contiguous (B, K)
  const acc_t* gd_all = has_gd ? grad_diversity->const_data_ptr<acc_t>() : nullptr;
  const acc_t* s_all = importance.const_data_ptr<acc_t>();
  const acc_t* lse_all = logsumexp.const_data_ptr<acc_t>();
  scalar_t* gf = grad_features.mutable_data_ptr<scalar_t>();
  scalar_t* ga = grad_logits.mutable_data_ptr<scalar_t>();
  const int64_t sfb = features.stride(0), sfc = features.stride(1), sfn = features.stride(2);
  const int64_t gfb = grad_features.stride(0), gfc = grad_features.stride(1),
                gfn = grad_features.stride(2);
  const int64_t sab = logits.stride(0), sak = logits.stride(1), san = logits.stride(2);
  const int64_t gab = grad_logits.stride(0), gak = grad_logits.stride(1),
                gan = grad_logits.stride(2);

  at::parallel_for(0, B, 1, [&](int64_t b_begin, int64_t b_end) {
    std::vector<acc_t> sig(K * N), prob(K * N), gw(K * N), gv_acc(K * C);
    std::vector<acc_t> row(std::max(N, C)), grow(std::max(N, C)), win(K), gs_tot(K);
    std::vector<int64_t> winner(N);
    for (int64_t b = b_begin; b < b_end; ++b) {
      const acc_t* s = s_all + b * K;
      const acc_t* lse = lse_all + b * K;
      const acc_t gd = has_gd ? gd_all[b] : acc_t(0);
      // Recompute the maps from the logits and the saved statistics.
      for (int64_t k = 0; k < K; ++k) {
        acc_t* x = prob.data() + k * N;
        load_row(a + b * sab + k * sak, san, N, x);
        for (int64_t n = 0; n < N; ++n) {
          sig[k * N + n] = fm::sigmoid(x[n]);
          x[n] = fm::pixel_prob(x[n], lse[k]);
        }
      }
      if (has_gd) {
        // k*(n): the same comparison, in the same order, as the forward's pixel max.
        for (int64_t n = 0; n < N; ++n) {
          winner[n] = 0;
          acc_t best = s[0] * prob[n];
          for (int64_t k = 1; k < K; ++k) {
            const acc_t cand = s[k] * prob[k * N + n];
            if (fm::replaces_winner(cand, best)) {
              best = cand;
              winner[n] = k;
            }
          }
        }
      }
      for (int64_t i = 0; i < K * C; ++i) gv_acc[i] = alpha * static_cast<acc_t>(gv[b * K * C + i]);
      std::fill(gw.begin(), gw.end(), acc_t(0));
      // One pass over the features: gw[k, n] = alpha sum_c gv[k, c] f[c, n] and
      // gf[c, n] = alpha sum_k gv[k, c] s[k] sig[k, n].
      const scalar_t* fb = f + b * sfb;
      scalar_t* gfb_ptr = gf + b * gfb;
      if (!channel_rows) {
        for (int64_t c = 0; c < C; ++c) {
          load_row(fb + c * sfc, sfn, N, row.data());
          std::fill(grow.begin(), grow.begin() + N, acc_t(0));
          for (int64_t k = 0; k < K; ++k) {
            const acc_t g = gv_acc[k * C + c];
            axpy(g, row.data(), gw.data() + k * N, N);
            axpy(g * s[k], sig.data() + k * N, grow.data(), N);
          }
          store_row(grow.data(), N, gfb_ptr + c * gfc, gfn);
        }
      } else {
        for (int64_t n = 0; n < N; ++n) {
          load_row(fb + n * sfn, sfc, C, row.data());
          std::fill(grow.begin(), grow.begin() + C, acc_t(0));
          for (int64_t k = 0; k < K; ++k) {
            gw[k * N + n] = dot(gv_acc.data() + k * C, row.data(), C);
            axpy(s[k] * sig[k * N + n], gv_acc.data() + k * C, grow.data(), C);
          }
          store_row(grow.data(), C, gfb_ptr + n * gfn, gfc);
        }
      }
      // The small [K, N] epilogue: recalibration, importance softmax and diversity gradients.
      acc_t weighted_sum = 0;
      for (int64_t k = 0; k < K; ++k) {
        win[k] = 0;
        if (has_gd) {
          for (int64_t n = 0; n < N; ++n) {
            if (winner[n] == k) win[k] += prob[k * N + n];
          }
        }
        gs_tot[k] = gs_all[b * K + k] + dot(gw.data() + k * N, sig.data() + k * N, N) - gd * win[k];
        weighted_sum += s[k] * gs_tot[k];
      }
      for (int64_t k = 0; k < K; ++k) {
        const acc_t gg = fm::importance_softmax_grad(s[k], gs_tot[k], weighted_sum);
        const acc_t gp_win = -gd * s[k];  // gp[k, n] where k wins pixel n, 0 elsewhere
        const acc_t p_dot_gp = gp_win * win[k];
        scalar_t* gak_ptr = ga + b * gab + k * gak;
        for (int64_t n = 0; n < N; ++n) {
          const acc_t gsig = fm::sigmoid_map_grad(s[k], gw[k * N + n], gg, inv_n);
          const acc_t gp = (has_gd && winner[n] == k) ? gp_win : acc_t(0);
          const acc_t p = has_gd ? prob[k * N + n] : acc_t(0);
          gak_ptr[n * gan] =
              static_cast<scalar_t>(fm::logit_grad(gsig, sig[k * N + n], p, gp, p_dot_gp));
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> attention_pool_fwd_cpu(
    const at::Tensor& features, const at::Tensor& logits, c10::string_view pool,
    bool compute_diversity) {
  const PoolShape sh = check_forward_args(features, logits, pool);
  auto [pooled, importance, diversity, logsumexp] =
      allocate_forward_outputs(features, sh, compute_diversity);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(),
                                  "attention_pool_fwd_cpu", [&] {
                                    forward_kernel<scalar_t>(features, logits, sh,
                                                             compute_diversity, pooled, importance,
                                                             diversity, logsumexp);
                                  });
  return {pooled, importance, diversity, logsumexp};
}

std::tuple<at::Tensor, at::Tensor> attention_pool_bwd_cpu(
    const at::Tensor& grad_pooled, const at::Tensor& grad_importance,
    const std::optional<at::Tensor>& grad_diversity, const at::Tensor& features,
    const at::Tensor& logits, const at::Tensor& importance, const at::Tensor& logsumexp,
    c10::string_view pool) {
  const PoolShape sh = check_backward_args(grad_pooled, grad_importance, grad_diversity, features,
                                           logits, importance, logsumexp, pool);
  auto [grad_features, grad_logits] = allocate_backward_outputs(features, logits);
  // The small per-sample inputs are made contiguous; the features never are.
  const at::Tensor gv = grad_pooled.contiguous();
  const at::Tensor gs = grad_importance.contiguous();
  const at::Tensor s = importance.contiguous();
  const at::Tensor lse = logsumexp.contiguous();
  std::optional<at::Tensor> gd;
  if (grad_diversity.has_value()) gd = grad_diversity->contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, features.scalar_type(),
                                  "attention_pool_bwd_cpu", [&] {
                                    backward_kernel<scalar_t>(gv, gs, gd, features, logits, s, lse,
                                                              sh, grad_features, grad_logits);
                                  });
  return {grad_features, grad_logits};
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedattn, CPU, m) {
  m.impl("attention_pool_fwd", &attention_pool_fwd_cpu);
  m.impl("attention_pool_bwd", &attention_pool_bwd_cpu);
}

}  // namespace fusedattn
