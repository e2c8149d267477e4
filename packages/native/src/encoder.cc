// A whole XLM-RoBERTa encoder layer (post-LN BERT layer) in one call, for inference: the products, attention,
// GELU, residuals and LayerNorms of the layer without a tensor op or a dispatch between them, every step on all
// threads of the pool.
//
// Design (read this before adding the backward):
//   hidden x [tokens, H], tokens = batch · seq, row-major; heads of d = H / heads columns.
//     qkv = x · [Wq; Wk; Wv]ᵀ + [bq; bk; bv]       [tokens, 3H]   one product, the three weights packed side by side
//     ctx = attention(q, k, v, mask)               [tokens, H]    FusedAttention below
//     a   = LN1(ctx · Woᵀ + bo + x)                [tokens, H]    bias, residual and LayerNorm on each row block
//     f   = GELU(a · W1ᵀ + b1)                     [tokens, FFN]  bias and GELU on each row block
//     out = LN2(f · W2ᵀ + b2 + a)                  [tokens, H]
//   in exactly the order of operations of the op-by-op model (modeling-xlm-roberta.ts): the product, then
//   `+ bias`, then `+ residual`; softmax(scores / √d + mask) with Exp8 and a double row sum; LayerNorm with double
//   moments. Only the order of the products' float32 sums differs from the op-by-op path, as it does between the
//   product kernels.
// Weights: PackEncoderLayer lays out the 16 tensors of a layer once (the product kernel's packed panels; raw rows
// for OpenBLAS) in one array the caller keeps while the weights are unchanged (@kotune/engine caches it per weight
// data id, so an optimizer step that assigns new weights makes it pack again).
// Work split: the products and their epilogues by blocks of kGemmRowBlock rows, the attention by (sequence, head,
// block of query rows). Every element takes the same operations whatever the thread count, so the bits do not
// depend on it (OpenBLAS aside, which splits its products its own way).
// Attention: for each query block, the keys in blocks of kKeyBlock: scores = q·kᵀ, then softmax and probs·v. Keys
// past a sequence's last unmasked one are skipped (they weigh exactly 0: Exp8 is 0 below −87.34). Up to kKeyBlock
// keys the softmax is exactly the op-by-op model's (softmax.cc's SoftmaxRows: normalised probabilities, then
// probs·v); longer sequences go
// through the online softmax of FlashAttention (running max and sum per row, the partial context rescaled as the
// max grows), so no [heads, n, n] score matrix exists for any n: the scratch memory is kQueryBlock · kKeyBlock
// floats a thread, and an 8,192-token input needs only its activations.
// Training (next): a variant of EncoderLayerForward that writes LayerBuffers to the caller's arrays instead of
// the scratch arena and keeps, per attention row, its max and sum (the backward recomputes the probabilities
// block by block from q, k and them, as FlashAttention's does), LN1/LN2's mean and rstd (layer_norm.cc's
// backward takes them), and f before GELU (elementwise.cc's GeluGrad recomputes Φ). Dropout sites draw the hashed
// mask of elementwise.cc's Dropout from their seed and the element's index in the full tensor (attention
// probabilities: index ((b·heads + h)·seq + row)·seq + key), so a block of it can be made anywhere, forward or
// backward, with the op-by-op model's mask.
// GCC 12 warns that its own AVX-512 intrinsics' `_mm512_undefined_*` placeholders "may be used uninitialized".
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "kernels.h"
#include "vector_math.h"

#if KOTUNE_X86_SIMD  // the whole layer runs on AVX2 (binding.cc offers it only where kIsa is not kNone)
namespace kotune {

namespace {

// kKeyBlock is a multiple of kGemmDepthBlock (256), so a key block starts a block of the packed values.
// kQueryBlock is a multiple of both register tiles' rows (12 and 6), so only a sequence's last block has a partial tile.
constexpr int kQueryBlock = 96, kKeyBlock = 512;

// Offsets of the parts of a packed layer (see PackEncoderLayer), in floats.
struct LayerLayout {
  size_t qkv, out, ffn1, ffn2, qkv_bias, out_bias, ln1_weight, ln1_bias, ffn1_bias, ffn2_bias, ln2_weight, ln2_bias, total;
};

size_t WeightLength(EncoderKernel kernel, int n, int k) {
  return kernel == EncoderKernel::kOpenBlas ? size_t(n) * k : PackedWeightLength(IsaOf(kernel), n, k);
}

LayerLayout LayoutOf(EncoderKernel kernel, int hidden, int ffn) {
  LayerLayout l;
  size_t at = 0;
  auto take = [&](size_t n) { const size_t start = at; at += (n + 15) / 16 * 16; return start; };  // 64-byte aligned parts
  l.qkv = take(WeightLength(kernel, 3 * hidden, hidden));
  l.out = take(WeightLength(kernel, hidden, hidden));
  l.ffn1 = take(WeightLength(kernel, ffn, hidden));
  l.ffn2 = take(WeightLength(kernel, hidden, ffn));
  l.qkv_bias = take(3 * hidden);
  l.out_bias = take(hidden);
  l.ln1_weight = take(hidden);
  l.ln1_bias = take(hidden);
  l.ffn1_bias = take(ffn);
  l.ffn2_bias = take(hidden);
  l.ln2_weight = take(hidden);
  l.ln2_bias = take(hidden);
  l.total = at;
  return l;
}

// The scratch arena of the layer's intermediates, kept between calls (a batch of the same size allocates nothing)
// and used by one call at a time.
std::mutex arena_mutex;
std::vector<float> arena;

// Where the layer's intermediates go.
struct LayerBuffers {
  float* qkv;  // [tokens, 3H]
  float* ctx;  // [tokens, H]
  float* a;    // [tokens, H], the attention block's output
  float* f;    // [tokens, FFN], GELU's output
};

// C[rows] = A[rows] · Wᵀ for one row block: the packed built-in product, or OpenBLAS on the raw weight.
void LinearRows(EncoderKernel kernel, int i0, int mc, int n, int k, const float* a, const float* w, float* c) {
  if (kernel == EncoderKernel::kOpenBlas) {
    OpenBlasGemm(1, mc, n, k, a + int64_t(i0) * k, false, w, true, c + int64_t(i0) * n);
  } else {
    PackedGemmRows(IsaOf(kernel), i0, mc, n, k, a, k, w, c, n);
  }
}

// For every row block: y = epilogue(x · Wᵀ), each block on one thread of the pool. Under OpenBLAS the product runs
// whole first (OpenBLAS threads it itself), then the epilogues by row blocks.
template <typename Epilogue>
void Linear(EncoderKernel kernel, int tokens, int n, int k, const float* x, const float* w, float* y, Epilogue epilogue) {
  const int block = kGemmRowBlock, blocks = (tokens + block - 1) / block;
  if (kernel == EncoderKernel::kOpenBlas) OpenBlasGemm(1, tokens, n, k, x, false, w, true, y);
  RunOnPool(blocks, [&](int t) {
    const int i0 = t * block, mc = std::min(block, tokens - i0);
    if (kernel != EncoderKernel::kOpenBlas) LinearRows(kernel, i0, mc, n, k, x, w, y);
    epilogue(i0, mc);
  });
}

void AddBias(float* rows, int count, const float* bias, int n) {
  for (int r = 0; r < count; r++) {
    float* row = rows + int64_t(r) * n;
    for (int j = 0; j < n; j++) row[j] = row[j] + bias[j];
  }
}

// rows = LayerNorm((rows + bias) + residual), as linear's add of the bias and the residual add, then LayerNorm.
void BiasResidualLayerNorm(float* rows, int count, const float* bias, const float* residual, const float* weight,
                           const float* ln_bias, int n, float eps) {
  for (int r = 0; r < count; r++) {
    float* row = rows + int64_t(r) * n;
    const float* res = residual + int64_t(r) * n;
    for (int j = 0; j < n; j++) row[j] = (row[j] + bias[j]) + res[j];
  }
  thread_local std::vector<float> stats;
  stats.resize(2 * size_t(count));
  LayerNormRows(rows, weight, ln_bias, rows, stats.data(), stats.data() + count, count, n, eps);
}

// e^x for one float, as Exp8 computes it.
__attribute__((target("avx2,fma"))) float Exp1(float x) { return _mm256_cvtss_f32(Exp8(_mm256_set1_ps(x))); }

// e = exp(z − shift) over n floats in place (Exp8; scalar tail padded), returning Σe in double.
__attribute__((target("avx2,fma"))) double ExpShifted(float* z, size_t n, float shift) {
  const float* const in[1] = {z};
  const __m256 s = _mm256_set1_ps(shift);
  Blocks8(n, in, z, [&](const float* const* at, float* out) __attribute__((target("avx2,fma"))) {
    _mm256_storeu_ps(out, Exp8(_mm256_sub_ps(_mm256_loadu_ps(at[0]), s)));
  });
  double sum = 0;
  for (size_t j = 0; j < n; j++) sum += z[j];
  return sum;
}

// Σ of 16 floats' values in double, added to sum8's lanes.
__attribute__((target("avx512f"))) inline __m512d AddWidened(__m512d sum8, __m512 e) {
  return _mm512_add_pd(sum8, _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(e)),
                                           _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1)))));
}

// One row of scores in place: z = row · (1/divisor) + mask (masked lanes past width untouched), returning max z.
// A product where the formula divides, as SoftmaxRows does (see softmax.cc).
__attribute__((target("avx512f"))) float ScaleMaskRow16(float* p, const float* mask, int width, float divisor) {
  const __m512 scale = _mm512_set1_ps(1.0f / divisor);
  __m512 top16 = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int j = 0; j < width; j += 16) {
    const __mmask16 lanes = width - j >= 16 ? 0xffff : static_cast<__mmask16>((1u << (width - j)) - 1);
    const __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, p + j), scale), _mm512_maskz_loadu_ps(lanes, mask + j));
    _mm512_mask_storeu_ps(p + j, lanes, v);
    top16 = _mm512_mask_max_ps(top16, lanes, top16, v);
  }
  return _mm512_reduce_max_ps(top16);
}

// e = exp(z − shift) in place over one row, returning Σe in double (Exp16; the tail's lanes under a mask).
__attribute__((target("avx512f"))) double ExpShiftedRow16(float* p, int width, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512d sum8 = _mm512_setzero_pd();
  for (int j = 0; j < width; j += 16) {
    const __mmask16 lanes = width - j >= 16 ? 0xffff : static_cast<__mmask16>((1u << (width - j)) - 1);
    const __m512 e = _mm512_maskz_mov_ps(lanes, Exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, p + j), s)));
    _mm512_mask_storeu_ps(p + j, lanes, e);
    sum8 = AddWidened(sum8, e);
  }
  return _mm512_reduce_add_pd(sum8);
}

// Attention probabilities of `rows` score rows of `width` in place: softmax(z / divisor + mask) as SoftmaxRows
// computes it (the same operations on each element, its products by 1/divisor and by float(1/Σ) included; only
// the double row sum adds its lanes in another order), 16 floats at a time where the CPU has AVX-512.
__attribute__((target("avx512f"))) void SoftmaxRows16(float* z, const float* mask, int rows, int width, float divisor) {
  for (int r = 0; r < rows; r++) {
    float* p = z + int64_t(r) * width;
    const float top = ScaleMaskRow16(p, mask, width, divisor);
    const __m512 inverse16 = _mm512_set1_ps(static_cast<float>(1.0 / ExpShiftedRow16(p, width, top)));
    for (int j = 0; j < width; j += 16) {
      const __mmask16 lanes = width - j >= 16 ? 0xffff : static_cast<__mmask16>((1u << (width - j)) - 1);
      _mm512_mask_storeu_ps(p + j, lanes, _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, p + j), inverse16));
    }
  }
}

// One key block of the online softmax (FlashAttention's running max and sum) for `rows` score rows of `width`:
// z = s · (1/divisor) + mask, the row's running top raised to the block's max, e = exp(z − top) in place, the
// running sum and the row's partial context (`d` floats) rescaled by e^(old top − new top) (0 for the first
// block: Exp of −∞ is 0), then the block's Σe added to the sum.
__attribute__((target("avx512f"))) void OnlineSoftmaxBlock16(float* z, const float* mask, int rows, int width, float divisor,
                                                            float* top, double* sums, float* acc, int d) {
  for (int r = 0; r < rows; r++) {
    float* p = z + int64_t(r) * width;
    const float new_top = std::max(top[r], ScaleMaskRow16(p, mask, width, divisor));
    const float rescale = _mm512_cvtss_f32(Exp16(_mm512_set1_ps(top[r] - new_top)));
    top[r] = new_top;
    sums[r] = sums[r] * rescale + ExpShiftedRow16(p, width, new_top);
    float* acc_row = acc + int64_t(r) * d;
    for (int j = 0; j < d; j += 16) {
      const __mmask16 lanes = d - j >= 16 ? 0xffff : static_cast<__mmask16>((1u << (d - j)) - 1);
      _mm512_mask_storeu_ps(acc_row + j, lanes, _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, acc_row + j), _mm512_set1_ps(rescale)));
    }
  }
}

// The same with AVX2 (Exp8), for the builtin-avx2 kernel.
__attribute__((target("avx2,fma"))) void OnlineSoftmaxBlock8(float* z, const float* mask, int rows, int width, float divisor,
                                                            float* top, double* sums, float* acc, int d) {
  for (int r = 0; r < rows; r++) {
    float* p = z + int64_t(r) * width;
    float block_top = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < width; j++) block_top = std::max(block_top, p[j] = p[j] * (1.0f / divisor) + mask[j]);
    const float new_top = std::max(top[r], block_top);
    const float rescale = Exp1(top[r] - new_top);
    top[r] = new_top;
    sums[r] = sums[r] * rescale + ExpShifted(p, width, new_top);
    float* acc_row = acc + int64_t(r) * d;
    for (int j = 0; j < d; j++) acc_row[j] *= rescale;
  }
}

struct AttentionShape {
  int batch, seq, hidden, heads;
  float divisor;  // √d, as the op-by-op model passes it
};

// ctx rows of head h of sequence b (see the design note at the top): its keys and values packed once as the
// product kernel's right operands, then the query rows in blocks of kQueryBlock.
void FusedAttention(Isa isa, const AttentionShape& s, const float* qkv, const float* mask, const int* key_end, float* ctx,
                    int b, int h) {
  const int d = s.hidden / s.heads, ld = 3 * s.hidden, keys = key_end[b];
  const float* q = qkv + int64_t(b) * s.seq * ld + h * d;
  const float* k = qkv + int64_t(b) * s.seq * ld + s.hidden + h * d;
  const float* v = qkv + int64_t(b) * s.seq * ld + 2 * s.hidden + h * d;
  const float* m = mask + int64_t(b) * s.seq;
  thread_local std::vector<float> keys_packed, values_packed, scores, partial, acc, top;
  thread_local std::vector<double> sums;
  keys_packed.resize(PackedWeightLength(isa, keys, d));  // kᵀ: d x keys
  values_packed.resize(PackedWeightLength(isa, d, keys));  // v: keys x d
  PackRight(isa, Matrix{k, true, ld}, d, keys, keys_packed.data());
  PackRight(isa, Matrix{v, false, ld}, keys, d, values_packed.data());
  const size_t value_rows = PackedWeightLength(isa, d, 1);  // floats of one key's row of packed values
  scores.resize(size_t(kQueryBlock) * kKeyBlock);
  for (int q0 = 0; q0 < s.seq; q0 += kQueryBlock) {
    const int rows = std::min(kQueryBlock, s.seq - q0);
    const float* qb = q + int64_t(q0) * ld;
    float* out = ctx + (int64_t(b) * s.seq + q0) * s.hidden + h * d;
    if (keys <= kKeyBlock) {
      // One block: the op-by-op model's softmax exactly (normalised probabilities), then probs · v.
      PackedGemmRows(isa, 0, rows, keys, d, qb, ld, keys_packed.data(), scores.data(), keys);
      if (isa == Isa::kAvx512) {
        SoftmaxRows16(scores.data(), m, rows, keys, s.divisor);
      } else {
        SoftmaxRows(scores.data(), m, scores.data(), rows, keys, rows, s.divisor);
      }
      PackedGemmRows(isa, 0, rows, d, keys, scores.data(), keys, values_packed.data(), out, s.hidden);
      continue;
    }
    // Online softmax over key blocks: acc = Σ_blocks e^(z − top)·v with the running top, divided by the running sum.
    partial.resize(size_t(kQueryBlock) * d);
    acc.assign(size_t(rows) * d, 0.0f);
    top.assign(rows, -std::numeric_limits<float>::infinity());
    sums.assign(rows, 0.0);
    for (int k0 = 0; k0 < keys; k0 += kKeyBlock) {
      const int width = std::min(kKeyBlock, keys - k0);
      PackedGemmRows(isa, 0, rows, width, d, qb, ld, keys_packed.data() + size_t(k0) * d, scores.data(), width);
      (isa == Isa::kAvx512 ? OnlineSoftmaxBlock16 : OnlineSoftmaxBlock8)(scores.data(), m + k0, rows, width, s.divisor,
                                                                         top.data(), sums.data(), acc.data(), d);
      PackedGemmRows(isa, 0, rows, d, width, scores.data(), width, values_packed.data() + size_t(k0) * value_rows, partial.data(), d);
      for (size_t i = 0; i < size_t(rows) * d; i++) acc[i] += partial[i];
    }
    for (int r = 0; r < rows; r++) {
      const float sum = static_cast<float>(sums[r]);
      for (int j = 0; j < d; j++) out[int64_t(r) * s.hidden + j] = acc[int64_t(r) * d + j] / sum;
    }
  }
}

// One layer from x into y (y may not alias x), intermediates in `buffers`.
void LayerForward(EncoderKernel kernel, const float* packed, const LayerLayout& l, const EncoderShape& shape,
                  const float* x, const float* mask, float* y, const LayerBuffers& buffers) {
  const Isa isa = IsaOf(kernel);
  const int hidden = shape.hidden, ffn = shape.ffn, tokens = shape.batch * shape.seq;
  const float eps = shape.eps;
  // The attention of sequence b reads keys [0, key_end[b]): past its last unmasked key all weigh exactly 0.
  std::vector<int> key_end(shape.batch);
  for (int b = 0; b < shape.batch; b++) {
    const float* mb = mask + int64_t(b) * shape.seq;
    int end = shape.seq;
    while (end > 0 && mb[end - 1] < -1e30f) end--;
    key_end[b] = end > 0 ? end : shape.seq;  // every key masked: all weigh alike, as in the op-by-op model
  }

  Linear(kernel, tokens, 3 * hidden, hidden, x, packed + l.qkv, buffers.qkv, [&](int i0, int mc) {
    AddBias(buffers.qkv + int64_t(i0) * 3 * hidden, mc, packed + l.qkv_bias, 3 * hidden);
  });

  const AttentionShape a{shape.batch, shape.seq, hidden, shape.heads, shape.divisor};
  RunOnPool(shape.batch * shape.heads, [&](int t) {
    FusedAttention(isa, a, buffers.qkv, mask, key_end.data(), buffers.ctx, t / shape.heads, t % shape.heads);
  });

  Linear(kernel, tokens, hidden, hidden, buffers.ctx, packed + l.out, buffers.a, [&](int i0, int mc) {
    BiasResidualLayerNorm(buffers.a + int64_t(i0) * hidden, mc, packed + l.out_bias, x + int64_t(i0) * hidden,
                          packed + l.ln1_weight, packed + l.ln1_bias, hidden, eps);
  });

  Linear(kernel, tokens, ffn, hidden, buffers.a, packed + l.ffn1, buffers.f, [&](int i0, int mc) {
    float* rows = buffers.f + int64_t(i0) * ffn;
    AddBias(rows, mc, packed + l.ffn1_bias, ffn);
    Gelu(rows, rows, size_t(mc) * ffn);
  });

  Linear(kernel, tokens, hidden, ffn, buffers.f, packed + l.ffn2, y, [&](int i0, int mc) {
    BiasResidualLayerNorm(y + int64_t(i0) * hidden, mc, packed + l.ffn2_bias, buffers.a + int64_t(i0) * hidden,
                          packed + l.ln2_weight, packed + l.ln2_bias, hidden, eps);
  });
}

}  // namespace

Isa IsaOf(EncoderKernel kernel) { return kernel == EncoderKernel::kBuiltinAvx2 ? Isa::kAvx2 : kIsa; }

size_t PackedEncoderLayerLength(EncoderKernel kernel, int hidden, int ffn) { return LayoutOf(kernel, hidden, ffn).total; }

void PackEncoderLayer(EncoderKernel kernel, const EncoderLayerWeights& w, int hidden, int ffn, float* out) {
  const LayerLayout l = LayoutOf(kernel, hidden, ffn);
  std::fill(out, out + l.total, 0.0f);
  std::vector<float> qkv(size_t(3) * hidden * hidden);
  for (int i = 0; i < 3; i++) std::memcpy(qkv.data() + size_t(i) * hidden * hidden, w.qkv_weight[i], sizeof(float) * hidden * hidden);
  auto pack = [&](const float* weight, int n, int k, size_t at) {
    if (kernel == EncoderKernel::kOpenBlas) {
      std::memcpy(out + at, weight, sizeof(float) * n * k);
    } else {
      PackWeight(IsaOf(kernel), weight, n, k, out + at);
    }
  };
  pack(qkv.data(), 3 * hidden, hidden, l.qkv);
  pack(w.out_weight, hidden, hidden, l.out);
  pack(w.ffn1_weight, ffn, hidden, l.ffn1);
  pack(w.ffn2_weight, hidden, ffn, l.ffn2);
  for (int i = 0; i < 3; i++) std::memcpy(out + l.qkv_bias + size_t(i) * hidden, w.qkv_bias[i], sizeof(float) * hidden);
  auto copy = [&](const float* from, int n, size_t at) { std::memcpy(out + at, from, sizeof(float) * n); };
  copy(w.out_bias, hidden, l.out_bias);
  copy(w.ln1_weight, hidden, l.ln1_weight);
  copy(w.ln1_bias, hidden, l.ln1_bias);
  copy(w.ffn1_bias, ffn, l.ffn1_bias);
  copy(w.ffn2_bias, hidden, l.ffn2_bias);
  copy(w.ln2_weight, hidden, l.ln2_weight);
  copy(w.ln2_bias, hidden, l.ln2_bias);
}

void EncoderLayerForward(EncoderKernel kernel, const float* packed, const EncoderShape& shape, const float* x,
                         const float* mask, float* y) {
  const LayerLayout l = LayoutOf(kernel, shape.hidden, shape.ffn);
  const size_t tokens = size_t(shape.batch) * shape.seq;
  std::lock_guard<std::mutex> one_at_a_time(arena_mutex);
  const size_t need = tokens * (5 * size_t(shape.hidden) + shape.ffn);
  if (arena.size() < need) {
    arena.clear();
    arena.shrink_to_fit();
    arena.resize(need);
  }
  float* at = arena.data();
  const LayerBuffers buffers{at, at + tokens * 3 * shape.hidden, at + tokens * 4 * shape.hidden, at + tokens * 5 * shape.hidden};
  LayerForward(kernel, packed, l, shape, x, mask, y, buffers);
}

}  // namespace kotune
#endif  // KOTUNE_X86_SIMD
