// The optimizer's kernels: the fused AdamW update (one pass instead of a dozen tensor ops) and the sum of squares
// for gradient clipping.
#include <cmath>

#include "kernels.h"

namespace kotune {

// Per element, in float32 and in this order (the order of @kotune/optim's AdamW ops):
//   g ← g·gradScale;  m ← m·β₁ + g·(1−β₁);  v ← v·β₂ + (g·g)·(1−β₂);  p ← p·decay (1: no decay)
//   p ← p − (m / (√v / bc2Sqrt + ε))·stepSize
void AdamWUpdate(const float* p, const float* g, const float* m, const float* v, float* p_out, float* m_out, float* v_out,
                 size_t n, const AdamWConstants& c) {
  const float beta1 = c.beta1, one_minus_beta1 = c.one_minus_beta1, beta2 = c.beta2, one_minus_beta2 = c.one_minus_beta2;
  const float decay = c.decay, bc2_sqrt = c.bc2_sqrt, eps = c.eps, step_size = c.step_size;
  const float grad_scale = c.grad_scale;
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i] * grad_scale;  // x·1 = x exactly, so no case for an unscaled gradient
    const float mi = m[i] * beta1 + gi * one_minus_beta1;
    const float vi = v[i] * beta2 + (gi * gi) * one_minus_beta2;
    const float pi = p[i] * decay;
    const float denom = std::sqrt(vi) / bc2_sqrt + eps;
    p_out[i] = pi - (mi / denom) * step_size;
    m_out[i] = mi;
    v_out[i] = vi;
  }
}

// Σ x² accumulated in double (a float32 sum over millions of elements loses digits).
double SumOfSquares(const float* x, size_t length) {
  double sums[4] = {0, 0, 0, 0};  // four chains, so the additions overlap
  size_t i = 0;
  for (; i + 4 <= length; i += 4) {
    for (int j = 0; j < 4; j++) sums[j] += double(x[i + j]) * double(x[i + j]);
  }
  for (; i < length; i++) sums[0] += double(x[i]) * double(x[i]);
  return (sums[0] + sums[1]) + (sums[2] + sums[3]);
}

}  // namespace kotune
