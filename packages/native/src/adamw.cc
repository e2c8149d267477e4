// The optimizer's kernels: the fused AdamW update (one pass instead of a dozen tensor ops) and the sum of squares
// for gradient clipping. Both stream memory (AdamW reads p, g, m, v and writes p, m, v: 28 bytes a parameter), so
// they run on all the pool's threads over fixed chunks, 8 or 4 lanes at a time. Each element takes the same float
// operations whatever the lanes or the split (IEEE add, multiply, divide and square root are exact per lane, and
// -ffp-contract=off keeps them unfused), and the sum of squares adds its chunks in order: the bits do not depend on
// the thread count or the CPU.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.h"
#if KOTUNE_X86_SIMD
#include <immintrin.h>
#endif

namespace kotune {

namespace {

// Elements a task takes: large enough that a task's start costs nothing next to its ~1 MB of traffic.
constexpr size_t kChunk = size_t(1) << 15;

// Runs body(begin, end) over the chunks of [0, n) on the pool, or on the calling thread when one chunk holds all.
template <typename Body>
void ForChunks(size_t n, Body body) {
  const size_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) {
    body(size_t(0), n);
    return;
  }
  RunOnPool(static_cast<int>(chunks), [&](int c) { body(size_t(c) * kChunk, std::min(n, size_t(c + 1) * kChunk)); });
}

struct AdamWArrays {
  const float *p, *g, *m, *v;
  float *p_out, *m_out, *v_out;
};

// Per element, in float32 and in this order (the order of @kotune/optim's AdamW ops):
//   g ← g·gradScale;  m ← m·β₁ + g·(1−β₁);  v ← v·β₂ + (g·g)·(1−β₂);  p ← p·decay (1: no decay)
//   p ← p − (m / (√v / bc2Sqrt + ε))·stepSize
inline void AdamWScalar(const AdamWArrays& a, size_t begin, size_t end, const AdamWConstants& c) {
  for (size_t i = begin; i < end; i++) {
    const float gi = a.g[i] * c.grad_scale;  // x·1 = x exactly, so no case for an unscaled gradient
    const float mi = a.m[i] * c.beta1 + gi * c.one_minus_beta1;
    const float vi = a.v[i] * c.beta2 + (gi * gi) * c.one_minus_beta2;
    const float pi = a.p[i] * c.decay;
    const float denom = std::sqrt(vi) / c.bc2_sqrt + c.eps;
    a.p_out[i] = pi - (mi / denom) * c.step_size;
    a.m_out[i] = mi;
    a.v_out[i] = vi;
  }
}

#if KOTUNE_X86_SIMD
// The same operations on 8 lanes (AVX), the tail scalar.
__attribute__((target("avx2"))) void AdamWAvx2(const AdamWArrays& a, size_t begin, size_t end, const AdamWConstants& c) {
  const __m256 scale = _mm256_set1_ps(c.grad_scale), beta1 = _mm256_set1_ps(c.beta1), one_minus_beta1 = _mm256_set1_ps(c.one_minus_beta1);
  const __m256 beta2 = _mm256_set1_ps(c.beta2), one_minus_beta2 = _mm256_set1_ps(c.one_minus_beta2), decay = _mm256_set1_ps(c.decay);
  const __m256 bc2 = _mm256_set1_ps(c.bc2_sqrt), eps = _mm256_set1_ps(c.eps), step = _mm256_set1_ps(c.step_size);
  size_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(a.g + i), scale);
    const __m256 m = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(a.m + i), beta1), _mm256_mul_ps(g, one_minus_beta1));
    const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(a.v + i), beta2), _mm256_mul_ps(_mm256_mul_ps(g, g), one_minus_beta2));
    const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(a.p + i), decay);
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), bc2), eps);
    _mm256_storeu_ps(a.p_out + i, _mm256_sub_ps(p, _mm256_mul_ps(_mm256_div_ps(m, denom), step)));
    _mm256_storeu_ps(a.m_out + i, m);
    _mm256_storeu_ps(a.v_out + i, v);
  }
  AdamWScalar(a, i, end, c);
}
#endif  // KOTUNE_X86_SIMD

// Σ x² over [begin, end) in double, in four chains (element i in chain i mod 4 counted from begin), so the
// additions overlap; the chains are added (0 + 1) + (2 + 3).
inline double SumOfSquaresScalar(const float* x, size_t begin, size_t end) {
  double sums[4] = {0, 0, 0, 0};
  size_t i = begin;
  for (; i + 4 <= end; i += 4) {
    for (int j = 0; j < 4; j++) sums[j] += double(x[i + j]) * double(x[i + j]);
  }
  for (; i < end; i++) sums[0] += double(x[i]) * double(x[i]);
  return (sums[0] + sums[1]) + (sums[2] + sums[3]);
}

#if KOTUNE_X86_SIMD
// The same four chains as four double lanes.
__attribute__((target("avx2"))) double SumOfSquaresAvx2(const float* x, size_t begin, size_t end) {
  __m256d sums = _mm256_setzero_pd();
  size_t i = begin;
  for (; i + 4 <= end; i += 4) {
    const __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
    sums = _mm256_add_pd(sums, _mm256_mul_pd(d, d));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, sums);
  for (; i < end; i++) lanes[0] += double(x[i]) * double(x[i]);
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}
#endif  // KOTUNE_X86_SIMD

}  // namespace

void AdamWUpdate(const float* p, const float* g, const float* m, const float* v, float* p_out, float* m_out, float* v_out,
                 size_t n, const AdamWConstants& c) {
  const AdamWArrays a{p, g, m, v, p_out, m_out, v_out};
  ForChunks(n, [&](size_t begin, size_t end) {
#if KOTUNE_X86_SIMD
    if (kIsa != Isa::kNone) {
      AdamWAvx2(a, begin, end, c);
      return;
    }
#endif
    AdamWScalar(a, begin, end, c);
  });
}

// Σ x² accumulated in double (a float32 sum over millions of elements loses digits): chunk by chunk, the chunks'
// sums added in order.
double SumOfSquares(const float* x, size_t length) {
  const size_t chunks = std::max<size_t>(1, (length + kChunk - 1) / kChunk);
  std::vector<double> sums(chunks, 0.0);
  ForChunks(length, [&](size_t begin, size_t end) {
#if KOTUNE_X86_SIMD
    if (kIsa != Isa::kNone) {
      sums[begin / kChunk] = SumOfSquaresAvx2(x, begin, end);
      return;
    }
#endif
    sums[begin / kChunk] = SumOfSquaresScalar(x, begin, end);
  });
  double total = 0;
  for (const double s : sums) total += s;
  return total;
}

}  // namespace kotune
