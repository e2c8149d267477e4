// LayerNorm and its gradient over rows, moments in double; the backward recomputes the normalised rows from x
// and two numbers per row (mean, rstd) instead of keeping them.
// GCC 12 warns that its own AVX-512 intrinsics' `_mm512_undefined_*` placeholders "may be used uninitialized".
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <cmath>
#include <vector>

#include "kernels.h"
#if KOTUNE_X86_SIMD
#include <immintrin.h>
#endif

namespace kotune {

namespace {

#if KOTUNE_X86_SIMD
// The low and high 8 floats of v, widened to double.
__attribute__((target("avx512f"))) inline __m512d low(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
__attribute__((target("avx512f"))) inline __m512d high(__m512 v) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

// One row as LayerNormRows computes it, 16 floats at a time: the moments in double (each float widened, the
// squares of x − mean in double), summed in 16 lanes; y in float with the scalar loop's operations per element.
__attribute__((target("avx512f"))) void LayerNormRowAvx512(const float* x, const float* w, const float* b, float* y,
                                                          float* mean, float* rstd, size_t width, double eps) {
  const size_t body = width / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (width - body)) - 1);
  __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();
  for (size_t j = 0; j < width; j += 16) {
    const __m512 v = j < body ? _mm512_loadu_ps(x + j) : _mm512_maskz_loadu_ps(tail, x + j);
    sum_lo = _mm512_add_pd(sum_lo, low(v));
    sum_hi = _mm512_add_pd(sum_hi, high(v));
  }
  const double mu = _mm512_reduce_add_pd(_mm512_add_pd(sum_lo, sum_hi)) / double(width);
  const __m512d mu8 = _mm512_set1_pd(mu);
  __m512d sq_lo = _mm512_setzero_pd(), sq_hi = _mm512_setzero_pd();
  for (size_t j = 0; j < width; j += 16) {
    const __m512 v = j < body ? _mm512_loadu_ps(x + j) : _mm512_maskz_loadu_ps(tail, x + j);
    const __mmask8 lanes_lo = j < body ? 0xff : static_cast<__mmask8>(tail), lanes_hi = j < body ? 0xff : static_cast<__mmask8>(tail >> 8);
    const __m512d d_lo = _mm512_sub_pd(low(v), mu8), d_hi = _mm512_sub_pd(high(v), mu8);
    sq_lo = _mm512_mask_add_pd(sq_lo, lanes_lo, sq_lo, _mm512_mul_pd(d_lo, d_lo));  // the tail's padding adds nothing
    sq_hi = _mm512_mask_add_pd(sq_hi, lanes_hi, sq_hi, _mm512_mul_pd(d_hi, d_hi));
  }
  const double squares = _mm512_reduce_add_pd(_mm512_add_pd(sq_lo, sq_hi));
  const float m = static_cast<float>(mu), s = static_cast<float>(1.0 / std::sqrt(squares / double(width) + eps));
  *mean = m;
  *rstd = s;
  const __m512 m16 = _mm512_set1_ps(m), s16 = _mm512_set1_ps(s);
  for (size_t j = 0; j < width; j += 16) {
    const __mmask16 lanes = j < body ? 0xffff : tail;
    const __m512 v = _mm512_maskz_loadu_ps(lanes, x + j);
    const __m512 out = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(v, m16), s16), _mm512_maskz_loadu_ps(lanes, w + j)),
                                     _mm512_maskz_loadu_ps(lanes, b + j));
    _mm512_mask_storeu_ps(y + j, lanes, out);
  }
}
#endif  // KOTUNE_X86_SIMD

}  // namespace

// Over each row of `width` = weight's length, y = (x − mean)·rstd·weight + bias with rstd = 1/√(biased variance
// + eps), the moments accumulated in double; `mean` and `rstd` (one per row) are kept for the backward instead of
// the normalised rows. With AVX-512, 16 elements at a time (the double sums then add in another order: the
// moments may differ in their last double bits, y at most by a float32 rounding where that moves m or rstd).
void LayerNormRows(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, size_t rows,
                   size_t width, double eps) {
#if KOTUNE_X86_SIMD
  if (kIsa == Isa::kAvx512) {
    for (size_t r = 0; r < rows; r++) LayerNormRowAvx512(x + r * width, w, b, y + r * width, mean + r, rstd + r, width, eps);
    return;
  }
#endif
  for (size_t r = 0; r < rows; r++) {
    const float* xr = x + r * width;
    double sum = 0;
    for (size_t j = 0; j < width; j++) sum += xr[j];
    const double mu = sum / double(width);
    double squares = 0;
    for (size_t j = 0; j < width; j++) squares += (xr[j] - mu) * (xr[j] - mu);
    const float m = static_cast<float>(mu), s = static_cast<float>(1.0 / std::sqrt(squares / double(width) + eps));
    mean[r] = m;
    rstd[r] = s;
    float* yr = y + r * width;
    for (size_t j = 0; j < width; j++) yr[j] = ((xr[j] - m) * s) * w[j] + b[j];
  }
}

// PyTorch's native_layer_norm_backward with x̂ = (x − mean)·rstd and g = dy·weight per row:
// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); dweight = Σ_rows dy·x̂; dbias = Σ_rows dy (sums in double).
void LayerNormGradRows(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx,
                       float* dweight, float* dbias, size_t rows, size_t width) {
  std::vector<double> dw(width, 0.0), db(width, 0.0);
  std::vector<float> normalized(width);
  for (size_t r = 0; r < rows; r++) {
    const float *xr = x + r * width, *dyr = dy + r * width;
    const float m = mean[r], s = rstd[r];
    double g_sum = 0, gx_sum = 0;
    for (size_t j = 0; j < width; j++) {
      normalized[j] = (xr[j] - m) * s;
      const float g = dyr[j] * w[j];
      g_sum += g;
      gx_sum += double(g) * normalized[j];
      dw[j] += double(dyr[j]) * normalized[j];
      db[j] += dyr[j];
    }
    const float g_mean = static_cast<float>(g_sum / double(width)), gx_mean = static_cast<float>(gx_sum / double(width));
    float* dxr = dx + r * width;
    for (size_t j = 0; j < width; j++) dxr[j] = s * ((dyr[j] * w[j] - g_mean) - normalized[j] * gx_mean);
  }
  for (size_t j = 0; j < width; j++) {
    dweight[j] = static_cast<float>(dw[j]);
    dbias[j] = static_cast<float>(db[j]);
  }
}

}  // namespace kotune
