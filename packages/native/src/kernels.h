// kotune's native kernels for the TensorFlow.js wasm and cpu backends, on float32 data that lives in
// JavaScript typed arrays (the wasm backend's heap, the cpu backend's arrays), without copies. One file per job:
//
//   blas_loader.cc  the system BLAS, opened at run time: OpenBLAS, Apple Accelerate or libblas.so.3
//   gemm.cc         matrix products: the system BLAS or the built-in kernel (AVX2/AVX-512, else portable C++)
//   thread_pool.cc  the worker threads the built-in product shares out its work to
//   elementwise.cc  GELU and its gradient, dropout (vector_math.h: the SIMD exp and erf they share with softmax)
//   layer_norm.cc   LayerNorm and its gradient
//   softmax.cc      attention softmax and its gradient
//   adamw.cc        the fused AdamW update and the sum of squares for gradient clipping
//   search.cc       float64 dot products for exact search
//   encoder.cc      a whole encoder layer for inference (products, fused attention, GELU, LayerNorms)
//   encoder_train.cc  the encoder layer for training: a forward that keeps what its backward needs, the backward
//   sums.cc         gradient-sized elementwise sums and scalings, and the embedding's gradient
//   binding.cc      the N-API functions: argument checks, then a call to one of the kernels declared here
//
// Why native: tfjs-backend-wasm's products run on 128-bit wasm SIMD at ~28 GFLOP/s a core inside the model,
// where OpenBLAS reaches ~95 on the same core; products are ~80% of a training step. The other kernels make one
// pass over memory each instead of several tensor ops, each a pass (AdamW as ops is a dozen; the cpu backend
// takes ~30 ns an element per op: 95 s a step for 278M parameters). The whole addon is built with
// -ffp-contract=off (no fused multiply-adds the source does not write), so that the AdamW update does torch's
// float32 operations in @kotune/optim's order and gives the same bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

// The x86 SIMD kernels (AVX2 and AVX-512 through target attributes, chosen at run time by kIsa) exist on x86-64
// unless the build asks for the portable path alone (KOTUNE_NATIVE_ISA=portable defines KOTUNE_PORTABLE). Elsewhere
// every kernel runs its portable C++; on arm64 the product's tile is NEON (KOTUNE_ARM_NEON) unless the build
// asks for the portable path alone.
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(KOTUNE_PORTABLE)
#define KOTUNE_X86_SIMD 1
#else
#define KOTUNE_X86_SIMD 0
#endif
#if defined(__aarch64__) && defined(__ARM_NEON) && !defined(KOTUNE_PORTABLE)
#define KOTUNE_ARM_NEON 1
#else
#define KOTUNE_ARM_NEON 0
#endif

namespace kotune {

// ---- gemm.cc ------------------------------------------------------------------------------------------------

// The widest x86 tile this CPU runs, or none (kNone: the portable tile, and the portable elementwise loops).
// AVX2 and FMA are required either way: the AVX2 tile (`builtin-avx2`), GELU and dropout run on them also where
// AVX-512 is present.
enum class Isa { kNone, kAvx2, kAvx512 };
extern const Isa kIsa;

// The system BLAS's cblas_sgemm, opened with dlopen at load time (blas_loader.cc); no header or link-time
// dependency, so the addon builds and loads where there is none. `openblas` names what opened: OpenBLAS, Apple
// Accelerate or another libblas.so.3 with CBLAS (its `vendor` says which).
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using GetIntFn = int (*)();
struct OpenBlas {
  SgemmFn sgemm = nullptr;
  GetIntFn get_num_threads = nullptr;
  std::string library;  // what opened, e.g. libopenblas.so.0
  std::string config;   // openblas_get_config(): version, target, threading (OpenBLAS only)
  std::string vendor;   // "OpenBLAS", "Accelerate" or "BLAS"
};
extern OpenBlas openblas;
// Opens the first BLAS found (KOTUNE_BLAS, a path, first when set), once per process however often it is called.
void OpenOpenBlas();

// op(X) of a row-major X: op(X)(i, p) is X[i·ld + p], or X[p·ld + i] when transposed.
struct Matrix {
  const float* data;
  bool trans;
  int ld;
};

// C (row stride ldc) = op(A) · op(B) on the calling thread, built-in kernel with the given tile.
void BuiltinGemm(Isa isa, int m, int n, int k, const Matrix& a, const Matrix& b, float* c, int ldc);

// A Linear weight W [n, k] (PyTorch's [out, in]) packed once for products x · Wᵀ (PackWeight writes
// PackedWeightLength floats), and rows [i0, i0 + mc) of C = A · Wᵀ from it on the calling thread: the same bits as
// BuiltinGemm(A, Wᵀ). Row blocks of kGemmRowBlock rows keep the packed A block in L2.
// PackRight packs any right operand op(B) (k x n) the same way, for products on the same rows (attention's keys
// and values); the panel of column j0 (a multiple of the panel width) starts at j0·k when k ≤ kGemmDepthBlock.
size_t PackedWeightLength(Isa isa, int n, int k);
void PackWeight(Isa isa, const float* w, int n, int k, float* out);
void PackRight(Isa isa, const Matrix& b, int k, int n, float* out);
void PackedGemmRows(Isa isa, int i0, int mc, int n, int k, const float* a, int lda, const float* packed, float* c, int ldc);
extern const int kGemmRowBlock, kGemmDepthBlock;

// c[i] = op(a[i]) · op(b[i]) for i < batch, row-major, each operand's entries stored one after another; c is
// overwritten. The built-in kernel runs on kBuiltinThreads threads with the given tile; OpenBLAS on its own.
void ParallelBuiltinGemm(Isa isa, int batch, int m, int n, int k, const float* a, bool trans_a, const float* b,
                         bool trans_b, float* c);
void OpenBlasGemm(int batch, int m, int n, int k, const float* a, bool trans_a, const float* b, bool trans_b, float* c);

// ---- encoder.cc ---------------------------------------------------------------------------------------------

// The product kernel a native encoder layer runs on.
enum class EncoderKernel { kBuiltin = 0, kOpenBlas = 1, kBuiltinAvx2 = 2 };
Isa IsaOf(EncoderKernel kernel);

// The 16 tensors of an XLM-RoBERTa layer, PyTorch's layouts (Linear weights [out, in]).
struct EncoderLayerWeights {
  const float* qkv_weight[3];  // query, key, value: [H, H] each
  const float* qkv_bias[3];    // [H] each
  const float *out_weight, *out_bias, *ln1_weight, *ln1_bias;  // attention.output: dense [H, H], LayerNorm [H]
  const float *ffn1_weight, *ffn1_bias;                        // intermediate.dense [FFN, H]
  const float *ffn2_weight, *ffn2_bias, *ln2_weight, *ln2_bias;  // output: dense [H, FFN], LayerNorm [H]
};

struct EncoderShape {
  int batch, seq, hidden, heads, ffn;
  float divisor;  // the scores' divisor, √(H / heads)
  float eps;      // layer_norm_eps
};

// The layer's weights laid out for `kernel` in one array of PackedEncoderLayerLength floats.
size_t PackedEncoderLayerLength(EncoderKernel kernel, int hidden, int ffn);
void PackEncoderLayer(EncoderKernel kernel, const EncoderLayerWeights& w, int hidden, int ffn, float* out);
// y = the layer applied to x [batch·seq, H], with the additive attention mask [batch, seq] (0 or float32's min).
void EncoderLayerForward(EncoderKernel kernel, const float* packed, const EncoderShape& shape, const float* x,
                         const float* mask, float* y);

// ---- encoder_train.cc ---------------------------------------------------------------------------------------

// The layer's three dropout sites in training (see encoder_train.cc): attention probabilities (rate
// attention_probs_dropout_prob), and the attention output and the feed-forward output (hidden_dropout_prob), each
// element kept where mix32(seed + (index + 1)·φ) ≥ threshold and then scaled (Dropout's mask).
struct EncoderDropout {
  bool attention;
  uint32_t attention_seed, attention_threshold;
  float attention_scale;
  bool hidden;
  uint32_t attention_output_seed, output_seed, hidden_threshold;
  float hidden_scale;
};

// Gradients of the layer's 16 tensors (EncoderLayerWeights' order and shapes), written (not added to).
struct EncoderLayerGrads {
  float* qkv_weight[3];
  float* qkv_bias[3];
  float *out_weight, *out_bias, *ln1_weight, *ln1_bias, *ffn1_weight, *ffn1_bias, *ffn2_weight, *ffn2_bias, *ln2_weight,
      *ln2_bias;
};

// Floats of what the training forward keeps for the backward.
size_t EncoderTrainStateLength(const EncoderShape& shape);
// y = the layer in training mode applied to x [batch·seq, H] (mask as EncoderLayerForward's), keeping the backward's
// state in `state` (nullptr: keep nothing, for a forward whose backward will run it again).
void EncoderLayerTrainForward(EncoderKernel kernel, const EncoderLayerWeights& w, const EncoderShape& shape,
                              const EncoderDropout& dropout, const float* x, const float* mask, float* y, float* state);
// dx and the weights' gradients from dy and the forward's x, mask and state (the same shape and dropout).
void EncoderLayerBackward(EncoderKernel kernel, const EncoderLayerWeights& w, const EncoderShape& shape,
                          const EncoderDropout& dropout, const float* x, const float* mask, const float* state, const float* dy,
                          float* dx, const EncoderLayerGrads& g);

// ---- thread_pool.cc -----------------------------------------------------------------------------------------

// Threads for the built-in product: OMP_NUM_THREADS where set (as PyTorch and OpenBLAS read it), else the CPUs
// this process may run on (its affinity mask, at most its container's CPU quota).
extern const int kBuiltinThreads;
// Runs task(i) for i < count on kBuiltinThreads threads (the caller's among them), and returns when all are done.
void RunOnPool(int count, const std::function<void(int)>& task);

// ---- elementwise.cc -----------------------------------------------------------------------------------------

// y = x·Φ(x), PyTorch's exact (erf) GELU.
void Gelu(const float* x, float* y, size_t n);
// dx = dy·(Φ(x) + x·φ(x)) (PyTorch's GeluBackward).
void GeluGrad(const float* x, const float* dy, float* dx, size_t n);
// y[i] = x[i]·scale where mix32(seed + (i + 1)·φ) ≥ threshold, else x[i]·0.
void Dropout(const float* x, float* y, size_t n, uint32_t seed, uint32_t threshold, float scale);

// ---- layer_norm.cc ------------------------------------------------------------------------------------------

// Over each of `rows` rows of `width`: y = (x − mean)·rstd·weight + bias, moments in double; writes mean, rstd.
void LayerNormRows(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, size_t rows,
                   size_t width, double eps);
// Its gradients from the forward's mean and rstd.
void LayerNormGradRows(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx,
                       float* dweight, float* dbias, size_t rows, size_t width);

// ---- softmax.cc ---------------------------------------------------------------------------------------------

// probs = softmax(scores / divisor + mask) per row of `width`, the mask row of row r at mask[(r / rows_per_mask)·width].
void SoftmaxRows(const float* scores, const float* mask, float* probs, size_t rows, size_t width, size_t rows_per_mask,
                 float divisor);
// dscores = (dy·p − Σ(dy·p)·p) / divisor per row.
void SoftmaxGradRows(const float* p, const float* dy, float* ds, size_t rows, size_t width, float divisor);

// ---- adamw.cc -----------------------------------------------------------------------------------------------

// AdamW's per-step constants, each a float32 as TensorFlow.js makes a scalar of a number.
struct AdamWConstants {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, decay, bc2_sqrt, eps, step_size, grad_scale;
};
void AdamWUpdate(const float* p, const float* g, const float* m, const float* v, float* p_out, float* m_out, float* v_out,
                 size_t n, const AdamWConstants& c);
// Σ x², accumulated in double.
double SumOfSquares(const float* x, size_t n);

// ---- sums.cc ------------------------------------------------------------------------------------------------

enum class ElementwiseOp { kAdd = 0, kMul = 1, kDiv = 2 };
// out[i] = a[i] op b[i] for i < n, or a[i] op b[0] where b_length is 1; one float32 operation an element.
void ElementwiseBinary(ElementwiseOp op, const float* a, const float* b, size_t b_length, float* out, size_t n);
// out [rows, width] = 0, then dy's row i (of count) added into out's row ids[i], in order of i; ids equal to
// `padding` (−1: none) are skipped: nn.Embedding's gradient, as tf.scatterND sums it.
void EmbeddingGrad(const int32_t* ids, size_t count, const float* dy, size_t rows, size_t width, int64_t padding, float* out);

// ---- search.cc ----------------------------------------------------------------------------------------------

// out[j·n + r] = Σ_d q[j][d]·x[r][d] in double, in order over d, for nq queries and n rows of dim floats.
void DotRows(const float* q, size_t nq, const float* x, size_t n, size_t dim, double* out);

}  // namespace kotune
