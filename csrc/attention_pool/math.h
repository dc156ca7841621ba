// Per-element math of attention pooling (docs/attention_pool.md), on top of the op-neutral
// common/math.h; shared by the CPU kernels (host compiler) and the CUDA kernels (nvcc), and so
// exercised by the CPU test suite exactly as the GPU kernels run it.
#pragma once

#include "../common/math.h"

namespace fusedattn {
namespace attention_pool {
namespace math {

// The op-neutral math (exp_, sigmoid, softmax states), reachable as attention_pool::math::*.
using namespace ::fusedattn::math;

// alpha of the spec: 1 for pool="sum" (the paper), 1/N for pool="mean".
template <typename acc_t>
FUSEDATTN_HD acc_t pool_scale(bool mean_pool, int64_t N) {
  return mean_pool ? acc_t(1) / acc_t(N) : acc_t(1);
}

// p[k,n] of the spec: the raw map as a distribution over pixels, from its saved log-sum-exp.
template <typename acc_t>
FUSEDATTN_HD acc_t pixel_prob(acc_t logit, acc_t logsumexp) {
  return softmax_prob(logit, logsumexp);
}

// w[k,n] = s[k] sig(a[k,n]): the recalibrated map. Every kernel that computes w (the forward's,
// and the backward's that recomputes it from the saved importance) computes it here, so that
// rounded to the input dtype they agree bitwise.
template <typename acc_t>
FUSEDATTN_HD acc_t recalibrated_map(acc_t importance, acc_t logit) {
  return importance * sigmoid(logit);
}

// The candidate of map k at one pixel in D = sum_n max_k s[k] p[k,n].
template <typename acc_t>
FUSEDATTN_HD acc_t weighted_prob(acc_t importance, acc_t logit, acc_t logsumexp) {
  return importance * pixel_prob(logit, logsumexp);
}

// Pixel-max selection with torch.max's tie rule: scanning k upwards, a later map replaces the
// current winner only when strictly larger, so the LOWEST k attaining the max wins (the spec's tie rule).
template <typename acc_t>
FUSEDATTN_HD bool replaces_winner(acc_t candidate, acc_t best) {
  return candidate > best;
}

// gg[k] = s[k] * (gs_tot[k] - sum_j s[j] gs_tot[j]): the backward of the softmax over K.
template <typename acc_t>
FUSEDATTN_HD acc_t importance_softmax_grad(acc_t importance, acc_t grad_total, acc_t weighted_sum) {
  return importance * (grad_total - weighted_sum);
}

// gsig[k,n] = s[k] gw[k,n] + gg[k] / N: the recalibration w = s * sig and the average pooling.
template <typename acc_t>
FUSEDATTN_HD acc_t sigmoid_map_grad(acc_t importance, acc_t grad_w, acc_t grad_gap, acc_t inv_n) {
  return importance * grad_w + grad_gap * inv_n;
}

// ga[k,n] = gsig sig (1 - sig) + p (gp - sum_m p gp): through the sigmoid and the pixel softmax.
template <typename acc_t>
FUSEDATTN_HD acc_t logit_grad(acc_t grad_sig, acc_t sig, acc_t prob, acc_t grad_prob,
                              acc_t prob_dot_grad) {
  return grad_sig * sig * (acc_t(1) - sig) + prob * (grad_prob - prob_dot_grad);
}

}  // namespace math
}  // namespace attention_pool
}  // namespace fusedattn
