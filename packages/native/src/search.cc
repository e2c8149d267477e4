// Exact search scores: float64 dot products of queries with corpus rows.
#include <vector>

#include "kernels.h"
#if KOTUNE_X86_SIMD
#include <immintrin.h>
#endif

namespace kotune {

namespace {

// dotRows(queries, rows, dim, out): out[j·n + r] = Σ_d queries[j][d]·rows[r][d] for every query j and row r,
// each sum in double and in order over d, as a JavaScript loop `s += q[d] * x[d]` computes it: the product
// of two floats is exact in double, so a fused multiply-add rounds exactly as the loop does, and the scores
// are the same bits. Four queries share each row's load, one per AVX2 lane.
__attribute__((always_inline)) inline void DotRowsScalar(const float* q, size_t nq, const float* x, size_t n, size_t dim,
                                                         double* out) {
  for (size_t j = 0; j < nq; j++) {
    for (size_t r = 0; r < n; r++) {
      double s = 0;
      for (size_t d = 0; d < dim; d++) s += double(q[j * dim + d]) * double(x[r * dim + d]);
      out[j * n + r] = s;
    }
  }
}

#if KOTUNE_X86_SIMD
__attribute__((target("avx2,fma"))) void DotRowsAvx2(const float* q, size_t nq, const float* x, size_t n, size_t dim,
                                                     double* out) {
  const size_t groups = nq / 4;  // whole groups of four queries; the rest go through the scalar loop
  std::vector<double> lanes(groups * dim * 4);  // lanes[(g·dim + d)·4 + l] = q[4g + l][d]
  for (size_t g = 0; g < groups; g++) {
    for (size_t d = 0; d < dim; d++) {
      for (size_t l = 0; l < 4; l++) lanes[(g * dim + d) * 4 + l] = q[(4 * g + l) * dim + d];
    }
  }
  // Four groups at a time: each lane's sum is a chain of dependent additions, so four independent chains
  // keep the FMA units busy (one chain waits ~4 cycles on each step).
  auto store = [&](__m256d acc, size_t g, size_t r) __attribute__((target("avx2,fma"))) {
    alignas(32) double sums[4];
    _mm256_store_pd(sums, acc);
    for (size_t l = 0; l < 4; l++) out[(4 * g + l) * n + r] = sums[l];
  };
  for (size_t r = 0; r < n; r++) {
    const float* xr = x + r * dim;
    size_t g = 0;
    for (; g + 4 <= groups; g += 4) {
      const double* qg = lanes.data() + g * dim * 4;
      const size_t stride = dim * 4;
      __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
      for (size_t d = 0; d < dim; d++) {
        const __m256d xd = _mm256_set1_pd(xr[d]);
        a0 = _mm256_fmadd_pd(_mm256_loadu_pd(qg + d * 4), xd, a0);
        a1 = _mm256_fmadd_pd(_mm256_loadu_pd(qg + stride + d * 4), xd, a1);
        a2 = _mm256_fmadd_pd(_mm256_loadu_pd(qg + 2 * stride + d * 4), xd, a2);
        a3 = _mm256_fmadd_pd(_mm256_loadu_pd(qg + 3 * stride + d * 4), xd, a3);
      }
      store(a0, g, r);
      store(a1, g + 1, r);
      store(a2, g + 2, r);
      store(a3, g + 3, r);
    }
    for (; g < groups; g++) {
      const double* qg = lanes.data() + g * dim * 4;
      __m256d acc = _mm256_setzero_pd();
      for (size_t d = 0; d < dim; d++) acc = _mm256_fmadd_pd(_mm256_loadu_pd(qg + d * 4), _mm256_set1_pd(xr[d]), acc);
      store(acc, g, r);
    }
  }
  DotRowsScalar(q + groups * 4 * dim, nq - groups * 4, x, n, dim, out + groups * 4 * n);
}
#endif  // KOTUNE_X86_SIMD

}  // namespace

void DotRows(const float* q, size_t nq, const float* x, size_t n, size_t dim, double* out) {
#if KOTUNE_X86_SIMD
  if (kIsa != Isa::kNone) return DotRowsAvx2(q, nq, x, n, dim, out);
#endif
  DotRowsScalar(q, nq, x, n, dim, out);
}

}  // namespace kotune
