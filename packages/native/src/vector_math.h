// SIMD math shared by the elementwise kernels and the softmax: exp, GELU's terms, and a loop over 8-float blocks.
#pragma once

#include "kernels.h"
#if KOTUNE_X86_SIMD
#include <immintrin.h>

#include <cstddef>
#include <cstring>

namespace kotune {

// GELU on 8 floats at a time with AVX2 and FMA. erf is Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), the
// approximation PyTorch's own vectorised CPU erf uses, and exp is Cephes' expf (≈1 ulp); the CPU without
// AVX2 gets libm's erff/expf instead. Φ(x) = (1 + erf(x/√2))·0.5, φ(x) = e^(−x²/2)/√(2π), and e^(−x²/2) is
// the exponential erf computes anyway.
struct GeluTerms {
  __m256 cdf, pdf;
};
struct GeluTerms16 {
  __m512 cdf, pdf;
};

__attribute__((target("avx2,fma"))) inline __m256 Exp8(__m256 x) {
  // Below −87.34 the result (< 1.2e-38, expf's smallest normal) is 0: a masked attention score must weigh nothing.
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654f), _CMP_LT_OQ);
  // The clamp's operands in this order let a NaN through (min/max return their second operand on a NaN), so
  // exp(NaN) is NaN: a NaN attention score makes its row NaN, as the tensor ops do, instead of weighing ~0.
  x = _mm256_min_ps(_mm256_set1_ps(88.72283f), _mm256_max_ps(_mm256_set1_ps(-87.33654f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln 2 in two parts: r = x − n·ln 2, exactly
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(two_n)));
}

// Exp8's operations on 16 floats (AVX-512): the same result in every lane.
__attribute__((target("avx512f"))) inline __m512 Exp16(__m512 x) {
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_set1_ps(88.72283f), _mm512_max_ps(_mm512_set1_ps(-87.33654f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i two_n = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_maskz_mul_ps(static_cast<__mmask16>(~underflow), y, _mm512_castsi512_ps(two_n));
}

__attribute__((target("avx2,fma"))) inline GeluTerms Gelu8(__m256 x) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  const __m256 a = _mm256_andnot_ps(sign_bit, _mm256_mul_ps(x, _mm256_set1_ps(0.70710678f)));  // |x|/√2
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), a, _mm256_set1_ps(1.0f)));
  __m256 poly = _mm256_set1_ps(1.061405429f);
  poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-1.453152027f));
  poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(1.421413741f));
  poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-0.284496736f));
  poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(0.254829592f));
  poly = _mm256_mul_ps(poly, t);
  const __m256 gauss = Exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));  // e^(−x²/2)
  const __m256 erf_abs = _mm256_fnmadd_ps(poly, gauss, _mm256_set1_ps(1.0f));
  const __m256 erf = _mm256_or_ps(erf_abs, _mm256_and_ps(sign_bit, x));
  return {_mm256_mul_ps(_mm256_add_ps(erf, _mm256_set1_ps(1.0f)), _mm256_set1_ps(0.5f)),
          _mm256_mul_ps(gauss, _mm256_set1_ps(0.39894228f))};
}

// Gelu8's operations on 16 floats (AVX-512): the same result in every lane.
__attribute__((target("avx512f"))) inline GeluTerms16 Gelu16(__m512 x) {
  const __m512 a = _mm512_abs_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678f)));  // |x|/√2
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), a, _mm512_set1_ps(1.0f)));
  __m512 poly = _mm512_set1_ps(1.061405429f);
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
  poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
  poly = _mm512_mul_ps(poly, t);
  const __m512 gauss = Exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a)));  // e^(−x²/2)
  const __m512 erf_abs = _mm512_fnmadd_ps(poly, gauss, _mm512_set1_ps(1.0f));
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(int(0x80000000u)));
  const __m512 erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf_abs), sign));
  return {_mm512_mul_ps(_mm512_add_ps(erf, _mm512_set1_ps(1.0f)), _mm512_set1_ps(0.5f)),
          _mm512_mul_ps(gauss, _mm512_set1_ps(0.39894228f))};
}

// Runs `body(inputs at the block, output at the block)` over 8-float blocks of n elements; the last partial
// block goes through a zero-padded copy, so every element takes the same arithmetic.
template <int kInputs, typename Body>
__attribute__((target("avx2,fma"))) inline void Blocks8(size_t n, const float* const (&in)[kInputs], float* out, Body body) {
  const float* at[kInputs];
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < kInputs; k++) at[k] = in[k] + i;
    body(at, out + i);
  }
  if (i == n) return;
  alignas(32) float pad_in[kInputs][8] = {}, pad_out[8];
  for (int k = 0; k < kInputs; k++) {
    std::memcpy(pad_in[k], in[k] + i, (n - i) * sizeof(float));
    at[k] = pad_in[k];
  }
  body(at, pad_out);
  std::memcpy(out + i, pad_out, (n - i) * sizeof(float));
}

}  // namespace kotune
#endif  // KOTUNE_X86_SIMD
