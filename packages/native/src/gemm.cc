// Matrix product, C = op(A) · op(B), row-major. Two kernels:
//   - the system BLAS's cblas_sgemm (OpenBLAS...), opened with dlopen at load time by blas_loader.cc;
//   - a built-in blocked kernel (the BLIS loop structure: packed panels of B, a register tile) with
//     an AVX2 and FMA or AVX-512 tile on x86-64, else a NEON or portable C++ one, on OMP_NUM_THREADS threads.
// Neither changes what is computed, only the order of the float32 sums.
#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "kernels.h"
#if KOTUNE_X86_SIMD
#include <immintrin.h>
#endif
#if KOTUNE_ARM_NEON
#include <arm_neon.h>
#endif

namespace kotune {

// ---- the system BLAS, opened at run time (blas_loader.cc) -------------------------------------

namespace {
enum CblasConstant { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };
}  // namespace

void OpenBlasGemm(int batch, int m, int n, int k, const float* a, bool trans_a, const float* b, bool trans_b, float* c) {
  for (int i = 0; i < batch; i++) {
    // cblas does not accept a zero leading dimension even for empty matrices.
    openblas.sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, m, n, k, 1.0f,
                   a + int64_t(i) * m * k, std::max(1, trans_a ? m : k), b + int64_t(i) * k * n,
                   std::max(1, trans_b ? k : n), 0.0f, c + int64_t(i) * m * n, std::max(1, n));
  }
}

// ---- built-in kernel ----------------------------------------------------------------------------

namespace {

// Cache blocks. The right operand is packed in panels of NR columns by KC rows (B's rows: the depth). A tile reads
// its MR rows of A in place (row stride lda: no packing of A, whose rows are already contiguous) and keeps them in
// L1 across the panels of an L2-sized block of NB columns, streamed from L2 one panel at a time.
// MC rows (a row block: one task of a threaded product, one block of an encoder layer's epilogues) share each
// column block, which comes from L3 once per row block.
constexpr int KC = 256, MC = 96, NC = 2048, NB = 512;

// Packs op(A)[i0:i0+mc, p0:p0+kc] row-major (mc rows of kc): the in-place layout of a transposed A.
void PackTransposedA(const Matrix& a, int i0, int mc, int p0, int kc, float* out) {
  for (int p = 0; p < kc; p++) {
    const float* src = a.data + int64_t(p0 + p) * a.ld + i0;
    for (int r = 0; r < mc; r++) out[int64_t(r) * kc + p] = src[r];
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+nc] as column panels of nr, p-major inside a panel, zero-padded.
void PackB(const Matrix& b, int p0, int kc, int j0, int nc, int nr, float* out) {
  for (int jr = 0; jr < nc; jr += nr) {
    const int cols = std::min(nr, nc - jr);
    if (!b.trans) {
      for (int p = 0; p < kc; p++) {
        const float* src = b.data + int64_t(p0 + p) * b.ld + j0 + jr;
        std::memcpy(out + p * nr, src, cols * sizeof(float));
        for (int j = cols; j < nr; j++) out[p * nr + j] = 0.0f;
      }
    } else {
      for (int j = 0; j < nr; j++) {
        if (j >= cols) {
          for (int p = 0; p < kc; p++) out[p * nr + j] = 0.0f;
          continue;
        }
        const float* src = b.data + int64_t(j0 + jr + j) * b.ld + p0;
        for (int p = 0; p < kc; p++) out[p * nr + j] = src[p];
      }
    }
    out += nr * kc;
  }
}

// A tile of `rows` (1 to MR) rows: the instance of Tile for that many.
template <template <int> class Tile, int... kRows>
struct TileTable {
  using Fn = void (*)(int, const float*, int64_t, const float*, float*, int64_t, bool, int);
  static Fn Get(int rows) {
    static constexpr Fn table[] = {&Tile<kRows>::Run...};
    return table[rows - 1];
  }
};

#if KOTUNE_X86_SIMD
// The register tiles: C[0:ROWS, 0:cols] (+)= A[0:ROWS, 0:kc] · packed B panel [kc, NR], each row of the tile two
// vectors (24 of AVX-512's 32 registers for 12 rows, 12 of AVX2's 16 for 6). Each element's sum over the kc
// products runs in order from 0 and is then stored, or added to C (`accumulate`: the later KC blocks).
// The A rows are addressed from bases at rows 0, 3, 6, 9 plus 0, 1 or 2 row strides, which x86 encodes in the
// load itself (base + stride·4 or ·8), so no row needs a register of its own.
template <int ROWS>
struct Avx512Tile {
  static constexpr int MR = 12, NR = 32;
  __attribute__((target("avx512f"))) static void Run(int kc, const float* a, int64_t lda, const float* b, float* c,
                                                    int64_t ldc, bool accumulate, int cols) {
    static_assert(ROWS >= 1 && ROWS <= MR, "a tile has 1 to 12 rows");
    __m512 acc0[ROWS], acc1[ROWS];
#pragma GCC unroll 12
    for (int r = 0; r < ROWS; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
    const float* base[4] = {a, a + 3 * lda, a + 6 * lda, a + 9 * lda};
#pragma GCC unroll 2
    for (int p = 0; p < kc; p++, b += NR) {
      const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
      for (int r = 0; r < ROWS; r++) {
        const __m512 ar = _mm512_set1_ps(base[r / 3][(r % 3) * lda + p]);
        acc0[r] = _mm512_fmadd_ps(ar, b0, acc0[r]);
        acc1[r] = _mm512_fmadd_ps(ar, b1, acc1[r]);
      }
    }
    const __mmask16 m0 = cols >= 16 ? 0xffff : (1u << cols) - 1, m1 = cols >= 32 ? 0xffff : cols > 16 ? (1u << (cols - 16)) - 1 : 0;
#pragma GCC unroll 12
    for (int r = 0; r < ROWS; r++) {
      float* row = c + r * ldc;
      if (accumulate) {
        acc0[r] = _mm512_add_ps(acc0[r], _mm512_maskz_loadu_ps(m0, row));
        acc1[r] = _mm512_add_ps(acc1[r], _mm512_maskz_loadu_ps(m1, row + 16));
      }
      _mm512_mask_storeu_ps(row, m0, acc0[r]);
      _mm512_mask_storeu_ps(row + 16, m1, acc1[r]);
    }
  }
};

template <int ROWS>
struct Avx2Tile {
  static constexpr int MR = 6, NR = 16;
  __attribute__((target("avx2,fma"))) static void Run(int kc, const float* a, int64_t lda, const float* b, float* c,
                                                      int64_t ldc, bool accumulate, int cols) {
    static_assert(ROWS >= 1 && ROWS <= MR, "a tile has 1 to 6 rows");
    __m256 acc0[ROWS], acc1[ROWS];
    for (int r = 0; r < ROWS; r++) acc0[r] = acc1[r] = _mm256_setzero_ps();
    const float* base[2] = {a, a + 3 * lda};
#pragma GCC unroll 2
    for (int p = 0; p < kc; p++, b += NR) {
      const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
      for (int r = 0; r < ROWS; r++) {
        const __m256 ar = _mm256_broadcast_ss(&base[r / 3][(r % 3) * lda + p]);
        acc0[r] = _mm256_fmadd_ps(ar, b0, acc0[r]);
        acc1[r] = _mm256_fmadd_ps(ar, b1, acc1[r]);
      }
    }
    if (cols == NR) {
      for (int r = 0; r < ROWS; r++) {
        float* row = c + r * ldc;
        if (accumulate) {
          acc0[r] = _mm256_add_ps(acc0[r], _mm256_loadu_ps(row));
          acc1[r] = _mm256_add_ps(acc1[r], _mm256_loadu_ps(row + 8));
        }
        _mm256_storeu_ps(row, acc0[r]);
        _mm256_storeu_ps(row + 8, acc1[r]);
      }
      return;
    }
    alignas(32) float tile[NR];
    for (int r = 0; r < ROWS; r++) {
      float* row = c + r * ldc;
      _mm256_store_ps(tile, acc0[r]);
      _mm256_store_ps(tile + 8, acc1[r]);
      for (int j = 0; j < cols; j++) row[j] = accumulate ? row[j] + tile[j] : tile[j];
    }
  }
};

using Avx512Tiles = TileTable<Avx512Tile, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12>;
using Avx2Tiles = TileTable<Avx2Tile, 1, 2, 3, 4, 5, 6>;
#endif  // KOTUNE_X86_SIMD

// The tile for every other CPU, the same shape as AVX2's: NEON's fused multiply-adds on arm64 (24 of its 32
// vector registers), elsewhere GCC/Clang vector types (SSE on x86-64 without AVX2), separate multiply and add.
template <int ROWS>
struct PortableTile {
  static constexpr int MR = 6, NR = 16;
  static void Run(int kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, bool accumulate, int cols) {
    static_assert(ROWS >= 1 && ROWS <= MR, "a tile has 1 to 6 rows");
    float tile[ROWS][NR];
#if KOTUNE_ARM_NEON
    float32x4_t acc[ROWS][4];
    for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = vdupq_n_f32(0.0f);
    for (int p = 0; p < kc; p++, b += NR) {
      const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
      for (int r = 0; r < ROWS; r++) {
        const float32x4_t ar = vdupq_n_f32(a[r * lda + p]);
        acc[r][0] = vfmaq_f32(acc[r][0], ar, b0);
        acc[r][1] = vfmaq_f32(acc[r][1], ar, b1);
        acc[r][2] = vfmaq_f32(acc[r][2], ar, b2);
        acc[r][3] = vfmaq_f32(acc[r][3], ar, b3);
      }
    }
    for (int r = 0; r < ROWS; r++) {
      for (int v = 0; v < 4; v++) vst1q_f32(tile[r] + 4 * v, acc[r][v]);
    }
#else
    typedef float Vec4 __attribute__((vector_size(16)));
    typedef float UnalignedVec4 __attribute__((vector_size(16), aligned(4), may_alias));
    Vec4 acc[ROWS][4] = {};
    for (int p = 0; p < kc; p++, b += NR) {
      const UnalignedVec4* bv = reinterpret_cast<const UnalignedVec4*>(b);
      const Vec4 b0 = bv[0], b1 = bv[1], b2 = bv[2], b3 = bv[3];
      for (int r = 0; r < ROWS; r++) {
        const Vec4 ar = Vec4{} + a[r * lda + p];
        acc[r][0] += ar * b0;
        acc[r][1] += ar * b1;
        acc[r][2] += ar * b2;
        acc[r][3] += ar * b3;
      }
    }
    for (int r = 0; r < ROWS; r++) std::memcpy(tile[r], acc[r], sizeof(tile[r]));
#endif
    for (int r = 0; r < ROWS; r++) {
      float* row = c + r * ldc;
      for (int j = 0; j < cols; j++) row[j] = accumulate ? row[j] + tile[r][j] : tile[r][j];
    }
  }
};
using PortableTiles = TileTable<PortableTile, 1, 2, 3, 4, 5, 6>;

// One KC block of rows [0, mc) of C (row stride ldc) += A (rows in place, stride lda, at the block's first column) ·
// the block's packed panels of columns [0, n): every row tile over the panels of one NB block, then the next block.
template <template <int> class Tile, typename Tiles>
void BlockRows(int mc, int n, int kc, const float* a, int64_t lda, const float* packed, float* c, int64_t ldc, bool accumulate) {
  constexpr int MR = Tile<1>::MR, NR = Tile<1>::NR;
  for (int j0 = 0; j0 < n; j0 += NB) {
    const int j1 = std::min(n, j0 + NB);
    for (int ir = 0; ir < mc; ir += MR) {
      const auto run = Tiles::Get(std::min(MR, mc - ir));
      for (int jr = j0; jr < j1; jr += NR) {
        run(kc, a + ir * lda, lda, packed + int64_t(jr) * kc, c + ir * ldc + jr, ldc, accumulate, std::min(NR, n - jr));
      }
    }
  }
}

template <template <int> class Tile, typename Tiles>
void BlockedGemm(int m, int n, int k, const Matrix& a, const Matrix& b, float* c, int ldc) {
  constexpr int NR = Tile<1>::NR;
  static_assert(NC % NR == 0 && NB % NR == 0, "column blocks must hold whole panels");
  if (k == 0) {
    for (int i = 0; i < m; i++) std::fill(c + int64_t(i) * ldc, c + int64_t(i) * ldc + n, 0.0f);
    return;
  }
  thread_local std::vector<float> packed_a(MC * KC), packed_b(KC * NC);
  for (int j0 = 0; j0 < n; j0 += NC) {
    const int nc = std::min(NC, n - j0);
    for (int p0 = 0; p0 < k; p0 += KC) {
      const int kc = std::min(KC, k - p0);
      PackB(b, p0, kc, j0, nc, NR, packed_b.data());
      for (int i0 = 0; i0 < m; i0 += MC) {
        const int mc = std::min(MC, m - i0);
        const float* rows = a.data + int64_t(i0) * a.ld + p0;
        int64_t lda = a.ld;
        if (a.trans) {
          PackTransposedA(a, i0, mc, p0, kc, packed_a.data());
          rows = packed_a.data();
          lda = kc;
        }
        BlockRows<Tile, Tiles>(mc, nc, kc, rows, lda, packed_b.data(), c + int64_t(i0) * ldc + j0, ldc, p0 > 0);
      }
    }
  }
}

Isa DetectIsa() {
#if KOTUNE_X86_SIMD
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return Isa::kNone;
  return __builtin_cpu_supports("avx512f") ? Isa::kAvx512 : Isa::kAvx2;
#else
  return Isa::kNone;
#endif
}

}  // namespace

const Isa kIsa = DetectIsa();

// C (row stride ldc) = op(A) · op(B) on one thread with the given tile.
void BuiltinGemm(Isa isa, int m, int n, int k, const Matrix& a, const Matrix& b, float* c, int ldc) {
#if KOTUNE_X86_SIMD
  if (isa == Isa::kAvx512) return BlockedGemm<Avx512Tile, Avx512Tiles>(m, n, k, a, b, c, ldc);
  if (isa == Isa::kAvx2) return BlockedGemm<Avx2Tile, Avx2Tiles>(m, n, k, a, b, c, ldc);
#else
  static_cast<void>(isa);  // the portable tile is the only one
#endif
  BlockedGemm<PortableTile, PortableTiles>(m, n, k, a, b, c, ldc);
}

// A right operand packed once: op(B) (k x n) as BlockedGemm's PackB lays it out, for every KC block of k one after
// another (block p0 holds its panels of NR columns, n rounded up to whole panels, p-major inside a panel).
int PanelWidth(Isa isa) {
#if KOTUNE_X86_SIMD
  if (isa != Isa::kNone) return isa == Isa::kAvx512 ? Avx512Tile<1>::NR : Avx2Tile<1>::NR;
#else
  static_cast<void>(isa);  // the portable tile is the only one
#endif
  return PortableTile<1>::NR;
}

size_t PackedWeightLength(Isa isa, int n, int k) {
  const int nr = PanelWidth(isa);
  return size_t((n + nr - 1) / nr * nr) * k;
}

void PackRight(Isa isa, const Matrix& b, int k, int n, float* out) {
  const int nr = PanelWidth(isa), n_pad = (n + nr - 1) / nr * nr;
  for (int p0 = 0; p0 < k; p0 += KC) PackB(b, p0, std::min(KC, k - p0), 0, n, nr, out + size_t(p0) * n_pad);
}

void PackWeight(Isa isa, const float* w, int n, int k, float* out) { PackRight(isa, Matrix{w, true, k}, k, n, out); }

namespace {

template <template <int> class Tile, typename Tiles>
void PackedRows(int i0, int mc, int n, int k, const float* a, int lda, const float* packed, float* c, int ldc) {
  constexpr int NR = Tile<1>::NR;
  const int n_pad = (n + NR - 1) / NR * NR;
  for (int p0 = 0; p0 < k; p0 += KC) {
    BlockRows<Tile, Tiles>(mc, n, std::min(KC, k - p0), a + int64_t(i0) * lda + p0, lda, packed + size_t(p0) * n_pad,
                           c + int64_t(i0) * ldc, ldc, p0 > 0);
  }
}

}  // namespace

// Rows [i0, i0 + mc) of C = A · Wᵀ (A row-major k wide, row stride lda) from W packed by PackWeight, on one thread:
// each element takes the same operations in the same order as BuiltinGemm gives it.
void PackedGemmRows(Isa isa, int i0, int mc, int n, int k, const float* a, int lda, const float* packed, float* c, int ldc) {
#if KOTUNE_X86_SIMD
  if (isa == Isa::kAvx512) return PackedRows<Avx512Tile, Avx512Tiles>(i0, mc, n, k, a, lda, packed, c, ldc);
  if (isa == Isa::kAvx2) return PackedRows<Avx2Tile, Avx2Tiles>(i0, mc, n, k, a, lda, packed, c, ldc);
#else
  static_cast<void>(isa);  // the portable tile is the only one
#endif
  PackedRows<PortableTile, PortableTiles>(i0, mc, n, k, a, lda, packed, c, ldc);
}

const int kGemmRowBlock = MC;
const int kGemmDepthBlock = KC;

// `batch` products on kBuiltinThreads threads: whole batch entries per thread when there are enough of them,
// else each entry's columns split in ranges of whole register tiles (each thread packs its own B columns and
// writes its own C columns, so no two threads touch the same memory). Small products stay on one thread.
void ParallelBuiltinGemm(Isa isa, int batch, int m, int n, int k, const float* a, bool trans_a, const float* b,
                         bool trans_b, float* c) {
  if (batch == 0) return;  // nothing to compute (and the split below divides by batch)
  const int nr = PanelWidth(isa);
  const double flops = 2.0 * batch * m * n * k;
  const int threads = flops < 4e6 ? 1 : kBuiltinThreads;  // below ~50 µs of work a hand-off costs more than it saves
  const int tiles = std::max(1, (n + nr - 1) / nr);
  const int splits = batch >= threads ? 1 : std::min(tiles, (threads + batch - 1) / batch);
  const int cols = (tiles + splits - 1) / splits * nr;
  const std::function<void(int)> task = [&](int t) {
    const int i = t / splits, j0 = (t % splits) * cols, j1 = std::min(n, j0 + cols);
    if (j0 >= n && n > 0) return;
    const float* ai = a + int64_t(i) * m * k;
    const float* bi = b + int64_t(i) * k * n;
    const Matrix op_b = trans_b ? Matrix{bi + int64_t(j0) * k, true, k} : Matrix{bi + j0, false, n};
    BuiltinGemm(isa, m, std::max(0, j1 - j0), k, Matrix{ai, trans_a, trans_a ? m : k}, op_b, c + int64_t(i) * m * n + j0, n);
  };
  if (threads == 1) {
    for (int t = 0; t < batch * splits; t++) task(t);
    return;
  }
  RunOnPool(batch * splits, task);
}

}  // namespace kotune
