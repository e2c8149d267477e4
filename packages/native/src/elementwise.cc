// GELU and its gradient, and dropout: one pass over memory each way, instead of a dozen tensor ops for GELU's
// backward and four for a dropout mask.
// GCC 12 warns that its own AVX-512 intrinsics' `_mm512_undefined_*` placeholders "may be used uninitialized".
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <cmath>
#include <cstdint>

#include "kernels.h"
#include "vector_math.h"

namespace kotune {

namespace {

#if KOTUNE_X86_SIMD
__attribute__((target("avx2,fma"))) void GeluAvx2(const float* x, float* y, size_t n) {
  const float* const in[1] = {x};
  Blocks8(n, in, y, [](const float* const* at, float* out) __attribute__((target("avx2,fma"))) {
    const __m256 xv = _mm256_loadu_ps(at[0]);
    _mm256_storeu_ps(out, _mm256_mul_ps(xv, Gelu8(xv).cdf));
  });
}

// GeluAvx2's operations 16 floats at a time (Gelu16: the same result in every lane), the tail under a mask.
__attribute__((target("avx512f"))) void GeluAvx512(const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    _mm512_storeu_ps(y + i, _mm512_mul_ps(xv, Gelu16(xv).cdf));
  }
  if (i == n) return;
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
  const __m512 xv = _mm512_maskz_loadu_ps(tail, x + i);
  _mm512_mask_storeu_ps(y + i, tail, _mm512_mul_ps(xv, Gelu16(xv).cdf));
}

__attribute__((target("avx2,fma"))) void GeluGradAvx2(const float* x, const float* dy, float* dx, size_t n) {
  const float* const in[2] = {x, dy};
  Blocks8(n, in, dx, [](const float* const* at, float* out) __attribute__((target("avx2,fma"))) {
    const __m256 xv = _mm256_loadu_ps(at[0]);
    const GeluTerms g = Gelu8(xv);
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_loadu_ps(at[1]), _mm256_fmadd_ps(xv, g.pdf, g.cdf)));
  });
}
#endif  // KOTUNE_X86_SIMD

// dropout(x, y, seed, threshold, scale): y[i] = x[i]·scale where mix32(seed + (i + 1)·φ) ≥ threshold, else
// x[i]·0, with φ = 0x9e3779b9 and mix32 murmur3's finaliser: @kotune/engine's `dropoutMask`, element for
// element, so the masks are the same with and without the addon. The backward is the same call on dy:
// nothing is kept between the two.
__attribute__((always_inline)) inline void DropoutLoop(const float* x, float* y, size_t n, uint32_t seed, uint32_t threshold,
                                                       float scale) {
  for (size_t i = 0; i < n; i++) {
    uint32_t h = seed + static_cast<uint32_t>(i + 1) * 0x9e3779b9u;
    h = (h ^ (h >> 16)) * 0x85ebca6bu;
    h = (h ^ (h >> 13)) * 0xc2b2ae35u;
    h ^= h >> 16;
    y[i] = x[i] * (h >= threshold ? scale : 0.0f);
  }
}

// The same loop, vectorised by the compiler with AVX2's 32-bit multiplies (8 elements at a time).
#if KOTUNE_X86_SIMD
__attribute__((target("avx2"))) void DropoutAvx2(const float* x, float* y, size_t n, uint32_t seed, uint32_t threshold,
                                                 float scale) {
  DropoutLoop(x, y, n, seed, threshold, scale);
}
#endif  // KOTUNE_X86_SIMD

}  // namespace

// y = x·Φ(x), PyTorch's exact (erf) GELU.
void Gelu(const float* x, float* y, size_t n) {
#if KOTUNE_X86_SIMD
  if (kIsa == Isa::kAvx512) {
    GeluAvx512(x, y, n);
    return;
  }
  if (kIsa != Isa::kNone) {
    GeluAvx2(x, y, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++) y[i] = x[i] * ((1.0f + std::erf(x[i] * float(M_SQRT1_2))) * 0.5f);
}

// dx = dy·(Φ(x) + x·φ(x)) (PyTorch's GeluBackward), Φ recomputed rather than kept from the forward: an erf is
// cheaper here than a saved activation.
void GeluGrad(const float* x, const float* dy, float* dx, size_t n) {
#if KOTUNE_X86_SIMD
  if (kIsa != Isa::kNone) {
    GeluGradAvx2(x, dy, dx, n);
    return;
  }
#endif
  const float inv_sqrt_2pi = static_cast<float>(1.0 / std::sqrt(2.0 * M_PI));
  for (size_t i = 0; i < n; i++) {
    const float xi = x[i];
    const float cdf = (1.0f + std::erf(xi * float(M_SQRT1_2))) * 0.5f;
    dx[i] = dy[i] * (cdf + xi * (std::exp(xi * xi * -0.5f) * inv_sqrt_2pi));
  }
}

void Dropout(const float* x, float* y, size_t n, uint32_t seed, uint32_t threshold, float scale) {
#if KOTUNE_X86_SIMD
  if (kIsa != Isa::kNone) {
    DropoutAvx2(x, y, n, seed, threshold, scale);
    return;
  }
#endif
  DropoutLoop(x, y, n, seed, threshold, scale);
}

}  // namespace kotune
