// Attention softmax and its gradient, a row at a time: scale, mask, exponentiate and normalise in one pass.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels.h"
#include "vector_math.h"

namespace kotune {

namespace {

#if KOTUNE_X86_SIMD
// softmax(scores, mask, probs, width, rowsPerMask, divisor): attention probabilities over rows of `width`,
// p = softmax(scores / divisor + mask) in the order of @kotune/engine's tensor ops, with the mask row of
// row r at mask[(r / rowsPerMask)·width] (an additive [batch, 1, 1, seq] mask under [batch, heads, q, seq]
// scores). exp is Exp8 (Cephes' expf, 0 below −87.34); each row's sum is accumulated in double. The two
// divisions are products by the reciprocal, s · (1/divisor) (exact where divisor is a power of two, as √64 is)
// and e · float(1/Σ), each within a float32 rounding of the quotient: a vector division costs more than Exp8,
// and the native encoder layer (encoder.cc) computes the same, so inference and training give the same bits.
__attribute__((target("avx2,fma"))) void SoftmaxRowsAvx2(const float* scores, const float* mask, float* probs, size_t rows,
                                                         size_t width, size_t rows_per_mask, float divisor) {
  const size_t body = width / 8 * 8;  // 8 floats at a time, then a scalar tail of the same operations
  const float scale = 1.0f / divisor;
  const __m256 scale8 = _mm256_set1_ps(scale);
  for (size_t r = 0; r < rows; r++) {
    const float *s = scores + r * width, *m = mask + (r / rows_per_mask) * width;
    float* p = probs + r * width;
    __m256 top8 = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    for (size_t j = 0; j < body; j += 8) {
      const __m256 z = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(s + j), scale8), _mm256_loadu_ps(m + j));
      _mm256_storeu_ps(p + j, z);
      top8 = _mm256_max_ps(top8, z);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, top8);
    float top = *std::max_element(lanes, lanes + 8);
    for (size_t j = body; j < width; j++) top = std::max(top, p[j] = s[j] * scale + m[j]);
    const float* const in[1] = {p};
    const __m256 shift = _mm256_set1_ps(top);
    Blocks8(width, in, p, [&](const float* const* at, float* out) __attribute__((target("avx2,fma"))) {
      _mm256_storeu_ps(out, Exp8(_mm256_sub_ps(_mm256_loadu_ps(at[0]), shift)));
    });
    __m256d sum4 = _mm256_setzero_pd();
    for (size_t j = 0; j < body; j += 8) {
      const __m256 e = _mm256_loadu_ps(p + j);
      sum4 = _mm256_add_pd(sum4, _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(e)), _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1))));
    }
    alignas(32) double partial[4];
    _mm256_store_pd(partial, sum4);
    double sum = (partial[0] + partial[1]) + (partial[2] + partial[3]);
    for (size_t j = body; j < width; j++) sum += p[j];
    const float inverse = static_cast<float>(1.0 / sum);
    const __m256 inverse8 = _mm256_set1_ps(inverse);
    for (size_t j = 0; j < body; j += 8) _mm256_storeu_ps(p + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), inverse8));
    for (size_t j = body; j < width; j++) p[j] *= inverse;
  }
}
#endif  // KOTUNE_X86_SIMD

}  // namespace

void SoftmaxRows(const float* scores, const float* mask, float* probs, size_t rows, size_t width, size_t rows_per_mask,
                 float divisor) {
#if KOTUNE_X86_SIMD
  if (kIsa != Isa::kNone) {
    SoftmaxRowsAvx2(scores, mask, probs, rows, width, rows_per_mask, divisor);
    return;
  }
#endif
  const float scale = 1.0f / divisor;  // without AVX2: the same steps with libm's expf
  for (size_t r = 0; r < rows; r++) {
    const float *sr = scores + r * width, *m = mask + (r / rows_per_mask) * width;
    float* p = probs + r * width;
    float top = -std::numeric_limits<float>::infinity();
    for (size_t j = 0; j < width; j++) top = std::max(top, p[j] = sr[j] * scale + m[j]);
    double sum = 0;
    for (size_t j = 0; j < width; j++) sum += p[j] = std::exp(p[j] - top);
    const float inverse = static_cast<float>(1.0 / sum);
    for (size_t j = 0; j < width; j++) p[j] *= inverse;
  }
}

// dscores = (dy·p − Σ(dy·p)·p) / divisor per row, the sum in double (autodiff's Softmax and RealDiv rules, as
// @kotune/engine's tensor ops do them).
void SoftmaxGradRows(const float* p, const float* dy, float* ds, size_t rows, size_t width, float divisor) {
  const float d = divisor;
  for (size_t r = 0; r < rows; r++) {
    const float *pr = p + r * width, *dyr = dy + r * width;
    float* dsr = ds + r * width;
    double sum = 0;
    for (size_t j = 0; j < width; j++) {
      dsr[j] = dyr[j] * pr[j];
      sum += dsr[j];
    }
    const float total = static_cast<float>(sum);
    for (size_t j = 0; j < width; j++) dsr[j] = (dsr[j] - total * pr[j]) / d;
  }
}

}  // namespace kotune
