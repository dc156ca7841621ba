// Checks the shared math headers on the host: csrc/common/math.h's vectorizable exp_ against
// libm's expf over a sweep of every float bit pattern (stride 97) and its softmax state merge,
// and csrc/attention_pool/math.h's tie rule. Prints one line per check; exits 1 on a failure.
// Built and run by tests/test_math_header.py.
#include "../../csrc/attention_pool/math.h"
#include "../../csrc/common/math.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <initializer_list>

namespace fm = fusedattn::math;

int main() {
  int failures = 0;
  double worst_ulp = 0.0;
  long edge_errors = 0;
  for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 97) {
    uint32_t bits = static_cast<uint32_t>(u);
    float x;
    std::memcpy(&x, &bits, 4);
    const float got = fm::exp_(x), want = std::exp(x);
    if (std::isnan(x)) {
      edge_errors += !std::isnan(got);
      continue;
    }
    if (std::isinf(want) || want == 0.f || want < 1.17549435e-38f) {  // overflow, underflow, subnormal
      edge_errors += std::fabs(static_cast<double>(got) - want) > 3e-45;
      continue;
    }
    const double ulp = std::fabs(static_cast<double>(got) - want) /
                       (std::nextafter(want, INFINITY) - want);
    if (ulp > worst_ulp) worst_ulp = ulp;
  }
  std::printf("exp_: worst %.2f ulp over the sweep, %ld edge-case errors\n", worst_ulp, edge_errors);
  failures += worst_ulp > 2.5 || edge_errors != 0;

  // softmax_push over a row in any split equals the two-pass log-sum-exp.
  const float row[] = {-3.f, 50.f, -1e30f, 0.f, 49.5f, -INFINITY, 7.f};
  const int n = sizeof(row) / sizeof(row[0]);
  double m = -INFINITY, sum = 0.0;
  for (float v : row) m = v > m ? v : m;
  for (float v : row) sum += std::exp(static_cast<double>(v) - m);
  const double lse = m + std::log(sum);
  double worst_lse = 0.0;
  for (int split = 0; split <= n; ++split) {
    fm::SoftmaxState<float> a = fm::softmax_empty<float>(), b = fm::softmax_empty<float>();
    for (int i = 0; i < split; ++i) a = fm::softmax_push(a, row[i]);
    for (int i = split; i < n; ++i) b = fm::softmax_push(b, row[i]);
    for (auto st : {fm::softmax_merge(a, b), fm::softmax_merge(b, a)}) {
      const double err = std::fabs(fm::softmax_logsumexp(st) - lse);
      if (err > worst_lse) worst_lse = err;
    }
  }
  const auto empty = fm::softmax_merge(fm::softmax_empty<float>(), fm::softmax_empty<float>());
  std::printf("softmax_merge: worst log-sum-exp error %.2e over every split; empty+empty sum %g\n",
              worst_lse, empty.sum);
  failures += worst_lse > 1e-5 || empty.sum != 0.f;

  // Tie rule: only a strictly larger candidate replaces the winner.
  namespace am = fusedattn::attention_pool::math;
  failures += am::replaces_winner(1.f, 1.f) || !am::replaces_winner(1.f, 0.5f);
  std::printf("%s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
