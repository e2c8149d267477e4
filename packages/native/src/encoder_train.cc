// A whole XLM-RoBERTa encoder layer for training: the forward in training mode (dropout from the hashed masks of
// elementwise.cc's Dropout) that keeps what the backward needs, and the backward, each in one call on all threads.
// encoder.cc's design comment describes the layer; this file keeps its notation.
//
// Forward (T = batch·seq tokens), into the caller's `state` (EncoderTrainStateLength floats) and y:
//   qkv   = x·Wqkvᵀ + bqkv                                   kept [T, 3H]
//   ctx   = dropout₁(softmax(q·kᵀ / √d + mask))·v            kept [T, H], with each attention row's max and sum
//   a     = LN1(dropout₂(ctx·Woᵀ + bo) + x)                   kept as x̂1 = (z − mean)·rstd [T, H] and rstd1 [T]
//   h     = a·W1ᵀ + b1                                        kept [T, FFN] (GELU's input)
//   y     = LN2(dropout₃(GELU(h)·W2ᵀ + b2) + a)               kept as x̂2 [T, H] and rstd2 [T]
// in the op-by-op model's order of operations (the product, + bias, the dropout mask, + residual; LayerNorm
// with double moments; softmax(z − max) with Exp8 and a double row sum). a = x̂1·γ1 + β1 and GELU(h) are made
// again by the backward, bit for bit the forward's (the same float operations), instead of being kept: 6H + FFN
// floats a token instead of 8H + 2·FFN.
// Attention never holds more than a block of kQueryBlock x kKeyBlock scores: up to kKeyBlock keys the softmax is
// exact (normalised, then dropout, then ·v); past that, the online softmax of FlashAttention (running max and sum,
// the partial context rescaled). The backward is FlashAttention's: per block, P = exp(z − max) · (1/sum) from q, k
// and the kept row statistics (the forward's very probabilities where keys fit one block), then
//   dP = dropout₁(dctx·vᵀ), dv += dropout₁(P)ᵀ·dctx, dz = P∘(dP − Δ) / √d with Δ = rowsum(dctx∘ctx),
//   dq += dz·k, dk += dzᵀ·q,
// so a 2,048-token sequence trains with O(T·H) memory.
// Dropout: the mask of an element is that of its index in the op-by-op model's tensor (attention probabilities
// [batch, heads, seq, seq]: ((b·heads + h)·seq + row)·seq + key; hidden [T, H]: token·H + column), made where it is
// needed by Dropout from seed + index·φ, so forward and backward agree with each other and with the op-by-op model.
// Work split: products by row or column ranges on the pool (each element takes the same operations whatever the
// split, so the bits do not depend on the thread count); attention by (sequence, head); row-wise steps by blocks
// of kRowBlock rows, whose column sums (bias and LayerNorm gradients) are added in block order, in double.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "kernels.h"
#include "vector_math.h"

#if KOTUNE_X86_SIMD  // its softmax runs on AVX2 (binding.cc offers the training layer only where kIsa is not kNone)
namespace kotune {

namespace {

constexpr int kQueryBlock = 64, kKeyBlock = 512, kRowBlock = 64;
constexpr uint32_t kPhi = 0x9e3779b9u;  // the hash's Weyl step (elementwise.cc's Dropout)

// ---- products -----------------------------------------------------------------------------------------------

// C (row stride ldc) = op(A) · op(B), m x n over k, on all threads: OpenBLAS as it threads itself, or the built-in
// kernel split into row or column ranges, whichever packs less (a range packs the other operand whole).
void Product(EncoderKernel kernel, int m, int n, int k, const Matrix& a, const Matrix& b, float* c, int ldc) {
  if (m == 0 || n == 0) return;
  if (kernel == EncoderKernel::kOpenBlas) {
    openblas.sgemm(101, a.trans ? 112 : 111, b.trans ? 112 : 111, m, n, k, 1.0f, a.data, std::max(1, a.ld), b.data,
                   std::max(1, b.ld), 0.0f, c, std::max(1, ldc));
    return;
  }
  const Isa isa = IsaOf(kernel);
  const double flops = 2.0 * m * n * k;
  const int parts = flops < 4e6 ? 1 : kBuiltinThreads;
  if (parts == 1) {
    BuiltinGemm(isa, m, n, k, a, b, c, ldc);
    return;
  }
  // Splitting rows repacks B in every part, splitting columns repacks A.
  const bool by_rows = double(k) * n <= double(m) * k && m >= parts * kGemmRowBlock;
  const int unit = by_rows ? kGemmRowBlock : int(PackedWeightLength(isa, 1, 1));  // whole row blocks or panels
  const int extent = by_rows ? m : n, units = (extent + unit - 1) / unit;
  const int per = (units + parts - 1) / parts;
  RunOnPool(parts, [&](int t) {
    const int lo = std::min(extent, t * per * unit), hi = std::min(extent, (t + 1) * per * unit);
    if (lo >= hi) return;
    if (by_rows) {
      const Matrix ap{a.trans ? a.data + lo : a.data + int64_t(lo) * a.ld, a.trans, a.ld};
      BuiltinGemm(isa, hi - lo, n, k, ap, b, c + int64_t(lo) * ldc, ldc);
    } else {
      const Matrix bp{b.trans ? b.data + int64_t(lo) * b.ld : b.data + lo, b.trans, b.ld};
      BuiltinGemm(isa, m, hi - lo, k, a, bp, c + lo, ldc);
    }
  });
}

// Runs body(first row, rows) over blocks of kRowBlock rows on the pool.
template <typename Body>
void ForRowBlocks(int rows, Body body) {
  const int blocks = (rows + kRowBlock - 1) / kRowBlock;
  RunOnPool(blocks, [&](int t) { body(t * kRowBlock, std::min(kRowBlock, rows - t * kRowBlock)); });
}

// out[j] = Σ_rows x[r·ld + j] in double, rows in order, columns split over the pool.
void ColumnSums(const float* x, int rows, int n, int ld, float* out) {
  const int parts = std::min(kBuiltinThreads, std::max(1, n / 64));
  const int per = (n + parts - 1) / parts;
  RunOnPool(parts, [&](int t) {
    const int lo = std::min(n, t * per), hi = std::min(n, (t + 1) * per);
    std::vector<double> sums(hi - lo, 0.0);
    for (int r = 0; r < rows; r++) {
      const float* row = x + int64_t(r) * ld;
      for (int j = lo; j < hi; j++) sums[j - lo] += row[j];
    }
    for (int j = lo; j < hi; j++) out[j] = static_cast<float>(sums[j - lo]);
  });
}

// ---- elementwise pieces ---------------------------------------------------------------------------------------

// rows[r][j] ← rows[r][j]·(kept ? scale : 0) for the hidden dropout of the element at token (first + r), column j.
void HiddenDropout(float* rows, int count, int first, int width, uint32_t seed, const EncoderDropout& d) {
  if (!d.hidden) return;
  const size_t n = size_t(count) * width;
  Dropout(rows, rows, n, seed + static_cast<uint32_t>(size_t(first) * width) * kPhi, d.hidden_threshold, d.hidden_scale);
}

// y = (x − mean)·rstd·w + b per row as LayerNormRows computes it, keeping x̂ = (x − mean)·rstd and rstd.
void LayerNormKeep(const float* x, const float* w, const float* b, float* y, float* xhat, float* rstd, int rows, int width,
                   double eps) {
  for (int r = 0; r < rows; r++) {
    const float* xr = x + int64_t(r) * width;
    double sum = 0;
    for (int j = 0; j < width; j++) sum += xr[j];
    const double mu = sum / double(width);
    double squares = 0;
    for (int j = 0; j < width; j++) squares += (xr[j] - mu) * (xr[j] - mu);
    const float m = static_cast<float>(mu), s = static_cast<float>(1.0 / std::sqrt(squares / double(width) + eps));
    rstd[r] = s;
    float* hr = xhat + int64_t(r) * width;
    float* yr = y + int64_t(r) * width;
    for (int j = 0; j < width; j++) {
      hr[j] = (xr[j] - m) * s;
      yr[j] = hr[j] * w[j] + b[j];
    }
  }
}

// a = x̂·w + b, the forward's LayerNorm output again from its x̂.
void Affine(const float* xhat, const float* w, const float* b, float* y, int rows, int width) {
  for (int r = 0; r < rows; r++) {
    const float* hr = xhat + int64_t(r) * width;
    float* yr = y + int64_t(r) * width;
    for (int j = 0; j < width; j++) yr[j] = hr[j] * w[j] + b[j];
  }
}

// LayerNorm's backward on rows [first, first + rows) (PyTorch's formula, as LayerNormGradRows): with g = dy·w,
// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); adds Σ dy·x̂ and Σ dy into the block's double partials dw, db.
void LayerNormBackwardRows(const float* xhat, const float* rstd, const float* w, const float* dy, float* dx, double* dw,
                           double* db, int rows, int width) {
  for (int r = 0; r < rows; r++) {
    const float *hr = xhat + int64_t(r) * width, *dyr = dy + int64_t(r) * width;
    double g_sum = 0, gx_sum = 0;
    for (int j = 0; j < width; j++) {
      const float g = dyr[j] * w[j];
      g_sum += g;
      gx_sum += double(g) * hr[j];
      dw[j] += double(dyr[j]) * hr[j];
      db[j] += dyr[j];
    }
    const float g_mean = static_cast<float>(g_sum / double(width)), gx_mean = static_cast<float>(gx_sum / double(width));
    float* dxr = dx + int64_t(r) * width;
    const float s = rstd[r];
    for (int j = 0; j < width; j++) dxr[j] = s * ((dyr[j] * w[j] - g_mean) - hr[j] * gx_mean);
  }
}

// The LayerNorm backward over all T rows by row blocks, its weight and bias gradients summed in block order.
void LayerNormBackward(const float* xhat, const float* rstd, const float* w, const float* dy, float* dx, float* dweight,
                       float* dbias, int tokens, int width) {
  const int blocks = (tokens + kRowBlock - 1) / kRowBlock;
  std::vector<double> partial(size_t(blocks) * 2 * width, 0.0);
  ForRowBlocks(tokens, [&](int i0, int rows) {
    double* dw = partial.data() + size_t(i0 / kRowBlock) * 2 * width;
    LayerNormBackwardRows(xhat + int64_t(i0) * width, rstd + i0, w, dy + int64_t(i0) * width, dx + int64_t(i0) * width, dw,
                          dw + width, rows, width);
  });
  for (int j = 0; j < width; j++) {
    double sw = 0, sb = 0;
    for (int t = 0; t < blocks; t++) {
      sw += partial[size_t(t) * 2 * width + j];
      sb += partial[size_t(t) * 2 * width + width + j];
    }
    dweight[j] = static_cast<float>(sw);
    dbias[j] = static_cast<float>(sb);
  }
}

// e^z for n floats in place (Exp8, a scalar tail through a padded block).
__attribute__((target("avx2,fma"))) void ExpInPlace(float* z, size_t n, float shift) {
  const float* const in[1] = {z};
  const __m256 s = _mm256_set1_ps(shift);
  Blocks8(n, in, z, [&](const float* const* at, float* out) __attribute__((target("avx2,fma"))) {
    _mm256_storeu_ps(out, Exp8(_mm256_sub_ps(_mm256_loadu_ps(at[0]), s)));
  });
}

// ---- attention ----------------------------------------------------------------------------------------------

struct Attention {
  const EncoderShape& s;
  const EncoderDropout& dropout;
  const float* mask;   // [batch, seq]
  const int* key_end;  // per sequence: keys past it are masked and weigh exactly 0
  int d() const { return s.hidden / s.heads; }
  // Index of the first attention probability of row `row` of head h of sequence b (the op-by-op tensor's).
  size_t ProbIndex(int b, int h, int row) const { return (size_t(b * s.heads + h) * s.seq + row) * s.seq; }
  void ProbDropout(float* p, int width, int b, int h, int row, int key) const {
    Dropout(p, p, width, dropout.attention_seed + static_cast<uint32_t>(ProbIndex(b, h, row) + key) * kPhi,
            dropout.attention_threshold, dropout.attention_scale);
  }
};

// z = s · (1/divisor) + mask over `width` keys from `key`, in place; returns the row's max. A product by the
// reciprocal, as the inference layer (encoder.cc) and softmax.cc compute it, so that a layer without dropout gives
// the same bits in training and at inference.
float Scale(float* z, const float* mask, int width, float divisor) {
  float top = -std::numeric_limits<float>::infinity();
  const float scale = 1.0f / divisor;
  for (int j = 0; j < width; j++) top = std::max(top, z[j] = z[j] * scale + mask[j]);
  return top;
}

// ctx rows of head h of sequence b, and each row's max and 1/sum (forward; the backward's P is e^(z − max) · (1/sum)).
void AttentionForward(Isa isa, const Attention& at, const float* qkv, float* ctx, float* row_max, float* row_sum, int b, int h) {
  const EncoderShape& s = at.s;
  const int d = at.d(), ld = 3 * s.hidden, keys = at.key_end[b];
  const float* q = qkv + int64_t(b) * s.seq * ld + h * d;
  const float* k = q + s.hidden;
  const float* v = q + 2 * s.hidden;
  const float* m = at.mask + int64_t(b) * s.seq;
  thread_local std::vector<float> scores, partial, acc;
  scores.resize(size_t(kQueryBlock) * std::min(keys, kKeyBlock));
  for (int q0 = 0; q0 < s.seq; q0 += kQueryBlock) {
    const int rows = std::min(kQueryBlock, s.seq - q0);
    float* out = ctx + (int64_t(b) * s.seq + q0) * s.hidden + h * d;
    float* tops = row_max + size_t(b * s.heads + h) * s.seq + q0;
    float* sums = row_sum + size_t(b * s.heads + h) * s.seq + q0;
    if (keys <= kKeyBlock) {
      BuiltinGemm(isa, rows, keys, d, Matrix{q + int64_t(q0) * ld, false, ld}, Matrix{k, true, ld}, scores.data(), keys);
      for (int r = 0; r < rows; r++) {
        float* p = scores.data() + int64_t(r) * keys;
        const float top = Scale(p, m, keys, s.divisor);
        ExpInPlace(p, keys, top);
        double sum = 0;
        for (int j = 0; j < keys; j++) sum += p[j];
        const float inverse = static_cast<float>(1.0 / sum);  // encoder.cc's product by float(1/Σ)
        for (int j = 0; j < keys; j++) p[j] *= inverse;
        tops[r] = top;
        sums[r] = inverse;
        if (at.dropout.attention) at.ProbDropout(p, keys, b, h, q0 + r, 0);
      }
      BuiltinGemm(isa, rows, d, keys, Matrix{scores.data(), false, keys}, Matrix{v, false, ld}, out, s.hidden);
      continue;
    }
    // Online softmax over key blocks: acc = Σ_blocks dropout(e^(z − top))·v with the running top, over the running sum.
    partial.resize(size_t(kQueryBlock) * d);
    acc.assign(size_t(rows) * d, 0.0f);
    std::vector<float> top(rows, -std::numeric_limits<float>::infinity());
    std::vector<double> total(rows, 0.0);
    for (int k0 = 0; k0 < keys; k0 += kKeyBlock) {
      const int width = std::min(kKeyBlock, keys - k0);
      BuiltinGemm(isa, rows, width, d, Matrix{q + int64_t(q0) * ld, false, ld}, Matrix{k + int64_t(k0) * ld, true, ld},
                  scores.data(), width);
      for (int r = 0; r < rows; r++) {
        float* z = scores.data() + int64_t(r) * width;
        const float new_top = std::max(top[r], Scale(z, m + k0, width, s.divisor));
        float rescale = 0.0f;  // e^(old top − new top): 0 for the first block
        if (top[r] != -std::numeric_limits<float>::infinity()) {
          rescale = top[r] - new_top;
          ExpInPlace(&rescale, 1, 0.0f);
        }
        top[r] = new_top;
        ExpInPlace(z, width, new_top);
        double sum = 0;
        for (int j = 0; j < width; j++) sum += z[j];
        total[r] = total[r] * rescale + sum;
        float* acc_row = acc.data() + int64_t(r) * d;
        for (int j = 0; j < d; j++) acc_row[j] *= rescale;
        if (at.dropout.attention) at.ProbDropout(z, width, b, h, q0 + r, k0);
      }
      BuiltinGemm(isa, rows, d, width, Matrix{scores.data(), false, width}, Matrix{v + int64_t(k0) * ld, false, ld},
                  partial.data(), d);
      for (size_t i = 0; i < size_t(rows) * d; i++) acc[i] += partial[i];
    }
    for (int r = 0; r < rows; r++) {
      const float sum = static_cast<float>(total[r]);
      tops[r] = top[r];
      sums[r] = static_cast<float>(1.0 / total[r]);
      for (int j = 0; j < d; j++) out[int64_t(r) * s.hidden + j] = acc[int64_t(r) * d + j] / sum;
    }
  }
}

// dq, dk, dv of head h of sequence b into dqkv (backward; see the design note at the top).
void AttentionBackward(Isa isa, const Attention& at, const float* qkv, const float* ctx, const float* dctx,
                       const float* row_max, const float* row_sum, float* dqkv, int b, int h) {
  const EncoderShape& s = at.s;
  const int d = at.d(), ld = 3 * s.hidden, keys = at.key_end[b];
  const int64_t base = int64_t(b) * s.seq;
  const float* q = qkv + base * ld + h * d;
  const float* k = q + s.hidden;
  const float* v = q + 2 * s.hidden;
  const float* m = at.mask + base;
  float* dq = dqkv + base * ld + h * d;
  float* dk = dq + s.hidden;
  float* dv = dq + 2 * s.hidden;
  const float* tops = row_max + size_t(b * s.heads + h) * s.seq;
  const float* sums = row_sum + size_t(b * s.heads + h) * s.seq;
  const int width_max = std::min(keys, kKeyBlock);
  thread_local std::vector<float> p, pd, dp, dk_acc, dv_acc, dq_acc, part, delta;
  p.resize(size_t(kQueryBlock) * width_max);
  pd.resize(p.size());
  dp.resize(p.size());
  dk_acc.assign(size_t(keys) * d, 0.0f);
  dv_acc.assign(size_t(keys) * d, 0.0f);
  dq_acc.resize(size_t(kQueryBlock) * d);
  part.resize(size_t(std::max(kQueryBlock, width_max)) * d);
  delta.resize(kQueryBlock);
  for (int q0 = 0; q0 < s.seq; q0 += kQueryBlock) {
    const int rows = std::min(kQueryBlock, s.seq - q0);
    const float* qb = q + int64_t(q0) * ld;
    const float* dob = dctx + (base + q0) * s.hidden + h * d;
    const float* ob = ctx + (base + q0) * s.hidden + h * d;
    for (int r = 0; r < rows; r++) {  // Δ = rowsum(dctx∘ctx)
      double sum = 0;
      for (int j = 0; j < d; j++) sum += double(dob[int64_t(r) * s.hidden + j]) * ob[int64_t(r) * s.hidden + j];
      delta[r] = static_cast<float>(sum);
    }
    std::fill(dq_acc.begin(), dq_acc.begin() + int64_t(rows) * d, 0.0f);
    for (int k0 = 0; k0 < keys; k0 += kKeyBlock) {
      const int width = std::min(kKeyBlock, keys - k0);
      // P from the scores again: the forward's operations on the same operands.
      BuiltinGemm(isa, rows, width, d, Matrix{qb, false, ld}, Matrix{k + int64_t(k0) * ld, true, ld}, p.data(), width);
      BuiltinGemm(isa, rows, width, d, Matrix{dob, false, s.hidden}, Matrix{v + int64_t(k0) * ld, true, ld}, dp.data(), width);
      for (int r = 0; r < rows; r++) {
        float* pr = p.data() + int64_t(r) * width;
        Scale(pr, m + k0, width, s.divisor);
        ExpInPlace(pr, width, tops[q0 + r]);
        const float inverse = sums[q0 + r];
        for (int j = 0; j < width; j++) pr[j] *= inverse;
        float* pdr = pd.data() + int64_t(r) * width;
        float* dpr = dp.data() + int64_t(r) * width;
        std::memcpy(pdr, pr, sizeof(float) * width);
        if (at.dropout.attention) {
          at.ProbDropout(pdr, width, b, h, q0 + r, k0);
          at.ProbDropout(dpr, width, b, h, q0 + r, k0);
        }
        // dz = P∘(dP − Δ) / divisor, written over dP.
        for (int j = 0; j < width; j++) dpr[j] = (pr[j] * (dpr[j] - delta[r])) / s.divisor;
      }
      // dv += dropout(P)ᵀ·dctx, dk += dzᵀ·q, dq += dz·k.
      BuiltinGemm(isa, width, d, rows, Matrix{pd.data(), true, width}, Matrix{dob, false, s.hidden}, part.data(), d);
      float* dvb = dv_acc.data() + int64_t(k0) * d;
      for (size_t i = 0; i < size_t(width) * d; i++) dvb[i] += part[i];
      BuiltinGemm(isa, width, d, rows, Matrix{dp.data(), true, width}, Matrix{qb, false, ld}, part.data(), d);
      float* dkb = dk_acc.data() + int64_t(k0) * d;
      for (size_t i = 0; i < size_t(width) * d; i++) dkb[i] += part[i];
      BuiltinGemm(isa, rows, d, width, Matrix{dp.data(), false, width}, Matrix{k + int64_t(k0) * ld, false, ld}, part.data(), d);
      for (size_t i = 0; i < size_t(rows) * d; i++) dq_acc[i] += part[i];
    }
    for (int r = 0; r < rows; r++) std::memcpy(dq + int64_t(q0 + r) * ld, dq_acc.data() + int64_t(r) * d, sizeof(float) * d);
  }
  for (int r = 0; r < s.seq; r++) {
    float* dkr = dk + int64_t(r) * ld;
    float* dvr = dv + int64_t(r) * ld;
    if (r < keys) {
      std::memcpy(dkr, dk_acc.data() + int64_t(r) * d, sizeof(float) * d);
      std::memcpy(dvr, dv_acc.data() + int64_t(r) * d, sizeof(float) * d);
    } else {  // masked tail keys weigh exactly 0
      std::fill(dkr, dkr + d, 0.0f);
      std::fill(dvr, dvr + d, 0.0f);
    }
  }
}

// ---- the layer ----------------------------------------------------------------------------------------------

// Offsets of the kept state, in floats (EncoderTrainStateLength is its total).
struct StateLayout {
  size_t qkv, ctx, xhat1, rstd1, h, xhat2, rstd2, row_max, row_sum, total;
};

StateLayout StateOf(const EncoderShape& s) {
  const size_t tokens = size_t(s.batch) * s.seq, rows = size_t(s.batch) * s.heads * s.seq;
  StateLayout l;
  size_t at = 0;
  auto take = [&](size_t n) { const size_t start = at; at += (n + 15) / 16 * 16; return start; };
  l.qkv = take(tokens * 3 * s.hidden);
  l.ctx = take(tokens * s.hidden);
  l.xhat1 = take(tokens * s.hidden);
  l.rstd1 = take(tokens);
  l.h = take(tokens * s.ffn);
  l.xhat2 = take(tokens * s.hidden);
  l.rstd2 = take(tokens);
  l.row_max = take(rows);
  l.row_sum = take(rows);
  l.total = at;
  return l;
}

// The scratch memory of the calls (one at a time), kept between them: a batch of the same size allocates nothing.
std::mutex scratch_mutex;
std::vector<float> scratch;

float* Scratch(size_t floats) {
  if (scratch.size() < floats) {
    scratch.clear();
    scratch.shrink_to_fit();
    scratch.resize(floats);
  }
  return scratch.data();
}

std::vector<int> KeyEnds(const EncoderShape& shape, const float* mask) {
  std::vector<int> key_end(shape.batch);
  for (int b = 0; b < shape.batch; b++) {
    const float* mb = mask + int64_t(b) * shape.seq;
    int end = shape.seq;
    while (end > 0 && mb[end - 1] < -1e30f) end--;
    key_end[b] = end > 0 ? end : shape.seq;  // every key masked: all weigh alike, as in the op-by-op model
  }
  return key_end;
}

void AddBias(float* rows, int count, const float* bias, int n, int ld) {
  for (int r = 0; r < count; r++) {
    float* row = rows + int64_t(r) * ld;
    for (int j = 0; j < n; j++) row[j] = row[j] + bias[j];
  }
}

// The three [H, H] weights of q, k, v one after another ([3H, H]).
std::vector<float> StackedQkv(const EncoderLayerWeights& w, int hidden) {
  std::vector<float> qkv(size_t(3) * hidden * hidden);
  for (int i = 0; i < 3; i++) std::memcpy(qkv.data() + size_t(i) * hidden * hidden, w.qkv_weight[i], sizeof(float) * hidden * hidden);
  return qkv;
}

}  // namespace

size_t EncoderTrainStateLength(const EncoderShape& shape) { return StateOf(shape).total; }

void EncoderLayerTrainForward(EncoderKernel kernel, const EncoderLayerWeights& w, const EncoderShape& shape,
                              const EncoderDropout& dropout, const float* x, const float* mask, float* y, float* state) {
  const int H = shape.hidden, F = shape.ffn, T = shape.batch * shape.seq;
  const StateLayout l = StateOf(shape);
  std::lock_guard<std::mutex> one_at_a_time(scratch_mutex);
  // a [T, H] and GELU(h) [T, F], then the state itself when the caller keeps none.
  const size_t work = size_t(T) * (H + F);
  float* at = Scratch(work + (state ? 0 : l.total));
  float* a = at;
  float* f = at + size_t(T) * H;
  if (!state) state = at + work;
  float* qkv = state + l.qkv;
  float* ctx = state + l.ctx;
  const std::vector<int> key_end = KeyEnds(shape, mask);
  const std::vector<float> wqkv = StackedQkv(w, H);

  Product(kernel, T, 3 * H, H, Matrix{x, false, H}, Matrix{wqkv.data(), true, H}, qkv, 3 * H);
  ForRowBlocks(T, [&](int i0, int rows) {
    for (int p = 0; p < 3; p++) AddBias(qkv + int64_t(i0) * 3 * H + p * H, rows, w.qkv_bias[p], H, 3 * H);
  });

  const Attention attention{shape, dropout, mask, key_end.data()};
  const Isa isa = IsaOf(kernel);
  RunOnPool(shape.batch * shape.heads, [&](int t) {
    AttentionForward(isa, attention, qkv, ctx, state + l.row_max, state + l.row_sum, t / shape.heads, t % shape.heads);
  });

  // z1 = dropout₂(ctx·Woᵀ + bo) + x; a = LN1(z1), keeping x̂1 and rstd1. y holds z1 for now.
  Product(kernel, T, H, H, Matrix{ctx, false, H}, Matrix{w.out_weight, true, H}, y, H);
  ForRowBlocks(T, [&](int i0, int rows) {
    float* z = y + int64_t(i0) * H;
    AddBias(z, rows, w.out_bias, H, H);
    HiddenDropout(z, rows, i0, H, dropout.attention_output_seed, dropout);
    const float* xr = x + int64_t(i0) * H;
    for (int64_t i = 0; i < int64_t(rows) * H; i++) z[i] = z[i] + xr[i];
    LayerNormKeep(z, w.ln1_weight, w.ln1_bias, a + int64_t(i0) * H, state + l.xhat1 + int64_t(i0) * H, state + l.rstd1 + i0,
                  rows, H, shape.eps);
  });

  // h = a·W1ᵀ + b1 (kept), f = GELU(h).
  float* h = state + l.h;
  Product(kernel, T, F, H, Matrix{a, false, H}, Matrix{w.ffn1_weight, true, H}, h, F);
  ForRowBlocks(T, [&](int i0, int rows) {
    AddBias(h + int64_t(i0) * F, rows, w.ffn1_bias, F, F);
    Gelu(h + int64_t(i0) * F, f + int64_t(i0) * F, size_t(rows) * F);
  });

  // y = LN2(dropout₃(f·W2ᵀ + b2) + a), keeping x̂2 and rstd2.
  Product(kernel, T, H, F, Matrix{f, false, F}, Matrix{w.ffn2_weight, true, F}, y, H);
  ForRowBlocks(T, [&](int i0, int rows) {
    float* z = y + int64_t(i0) * H;
    AddBias(z, rows, w.ffn2_bias, H, H);
    HiddenDropout(z, rows, i0, H, dropout.output_seed, dropout);
    const float* ar = a + int64_t(i0) * H;
    for (int64_t i = 0; i < int64_t(rows) * H; i++) z[i] = z[i] + ar[i];
    LayerNormKeep(z, w.ln2_weight, w.ln2_bias, z, state + l.xhat2 + int64_t(i0) * H, state + l.rstd2 + i0, rows, H, shape.eps);
  });
}

void EncoderLayerBackward(EncoderKernel kernel, const EncoderLayerWeights& w, const EncoderShape& shape,
                          const EncoderDropout& dropout, const float* x, const float* mask, const float* state, const float* dy,
                          float* dx, const EncoderLayerGrads& g) {
  const int H = shape.hidden, F = shape.ffn, T = shape.batch * shape.seq;
  const StateLayout l = StateOf(shape);
  std::lock_guard<std::mutex> one_at_a_time(scratch_mutex);
  // a, dz [T, H]; f, dh [T, F]; dqkv [T, 3H] (dz is dz2, then da, then dz1; dctx reuses a).
  float* at = Scratch(size_t(T) * (2 * H + 2 * F + 3 * H));
  float* a = at;
  float* dz = a + size_t(T) * H;
  float* f = dz + size_t(T) * H;
  float* dh = f + size_t(T) * F;
  float* dqkv = dh + size_t(T) * F;
  const float* qkv = state + l.qkv;
  const float* ctx = state + l.ctx;
  const float* h = state + l.h;

  // LN2: dz2 from dy; then dropout₃'s mask on it gives d(f·W2ᵀ + b2), kept in dx for now (dz2 also flows to a).
  LayerNormBackward(state + l.xhat2, state + l.rstd2, w.ln2_weight, dy, dz, g.ln2_weight, g.ln2_bias, T, H);
  ForRowBlocks(T, [&](int i0, int rows) {
    std::memcpy(dx + int64_t(i0) * H, dz + int64_t(i0) * H, sizeof(float) * rows * H);
    HiddenDropout(dx + int64_t(i0) * H, rows, i0, H, dropout.output_seed, dropout);
    Affine(state + l.xhat1 + int64_t(i0) * H, w.ln1_weight, w.ln1_bias, a + int64_t(i0) * H, rows, H);
    Gelu(h + int64_t(i0) * F, f + int64_t(i0) * F, size_t(rows) * F);
  });
  const float* do2 = dx;
  ColumnSums(do2, T, H, H, g.ffn2_bias);
  Product(kernel, H, F, T, Matrix{do2, true, H}, Matrix{f, false, F}, g.ffn2_weight, F);
  Product(kernel, T, F, H, Matrix{do2, false, H}, Matrix{w.ffn2_weight, false, F}, dh, F);  // df
  ForRowBlocks(T, [&](int i0, int rows) { GeluGrad(h + int64_t(i0) * F, dh + int64_t(i0) * F, dh + int64_t(i0) * F, size_t(rows) * F); });
  ColumnSums(dh, T, F, F, g.ffn1_bias);
  Product(kernel, F, H, T, Matrix{dh, true, F}, Matrix{a, false, H}, g.ffn1_weight, H);
  // da = dh·W1 + dz2, into dx (d(o2) is no longer needed), then LN1's backward into dz (dz1).
  Product(kernel, T, H, F, Matrix{dh, false, F}, Matrix{w.ffn1_weight, false, H}, dx, H);
  ForRowBlocks(T, [&](int i0, int rows) {
    float* da = dx + int64_t(i0) * H;
    const float* dz2 = dz + int64_t(i0) * H;
    for (int64_t i = 0; i < int64_t(rows) * H; i++) da[i] = da[i] + dz2[i];
  });
  LayerNormBackward(state + l.xhat1, state + l.rstd1, w.ln1_weight, dx, dz, g.ln1_weight, g.ln1_bias, T, H);
  // d(ctx·Woᵀ + bo) = dropout₂(dz1) into dh (free now), dctx into a (free now); dz1 also flows to dx (the residual).
  float* d_o = dh;
  ForRowBlocks(T, [&](int i0, int rows) {
    std::memcpy(d_o + int64_t(i0) * H, dz + int64_t(i0) * H, sizeof(float) * rows * H);
    HiddenDropout(d_o + int64_t(i0) * H, rows, i0, H, dropout.attention_output_seed, dropout);
  });
  ColumnSums(d_o, T, H, H, g.out_bias);
  Product(kernel, H, H, T, Matrix{d_o, true, H}, Matrix{ctx, false, H}, g.out_weight, H);
  float* dctx = a;
  Product(kernel, T, H, H, Matrix{d_o, false, H}, Matrix{w.out_weight, false, H}, dctx, H);

  const std::vector<int> key_end = KeyEnds(shape, mask);
  const Attention attention{shape, dropout, mask, key_end.data()};
  const Isa isa = IsaOf(kernel);
  RunOnPool(shape.batch * shape.heads, [&](int t) {
    AttentionBackward(isa, attention, qkv, ctx, dctx, state + l.row_max, state + l.row_sum, dqkv, t / shape.heads, t % shape.heads);
  });

  for (int p = 0; p < 3; p++) {
    ColumnSums(dqkv + p * H, T, H, 3 * H, g.qkv_bias[p]);
    Product(kernel, H, H, T, Matrix{dqkv + p * H, true, 3 * H}, Matrix{x, false, H}, g.qkv_weight[p], H);
  }
  // dx = dqkv·Wqkv + dz1.
  const std::vector<float> wqkv = StackedQkv(w, H);
  Product(kernel, T, H, 3 * H, Matrix{dqkv, false, 3 * H}, Matrix{wqkv.data(), false, H}, dx, H);
  ForRowBlocks(T, [&](int i0, int rows) {
    float* dxr = dx + int64_t(i0) * H;
    const float* dz1 = dz + int64_t(i0) * H;
    for (int64_t i = 0; i < int64_t(rows) * H; i++) dxr[i] = dxr[i] + dz1[i];
  });
}

}  // namespace kotune
#endif  // KOTUNE_X86_SIMD
