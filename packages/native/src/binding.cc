// The N-API functions: each checks its arguments (Float32Arrays of matching lengths, numbers in range) and calls
// one kernel of kernels.h on the arrays' memory, in place. What each computes is documented at its kernel and in
// ../src/index.ts. Every N-API call's status is checked: a failure throws a JavaScript error that names the call.
#include <node_api.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

// Set by build.mjs: what the addon was built from and for (index.ts refuses an addon built from other sources).
#ifndef KOTUNE_SOURCE_HASH
#define KOTUNE_SOURCE_HASH ""
#endif
#ifndef KOTUNE_BUILD_ISA
#define KOTUNE_BUILD_ISA ""
#endif

#include "kernels.h"

namespace kotune {

namespace {

// kBuiltinAvx2 is the built-in kernel held to AVX2 on an AVX-512 CPU (where AVX-512 may clock lower).
enum Kernel { kBuiltin = 0, kOpenBlas = 1, kBuiltinAvx2 = 2 };

// True if `status` is napi_ok; else throws an error naming `call` and N-API's reason, unless an exception is
// already pending (a getter of the caller's object threw: that one reaches the caller).
bool Ok(napi_env env, napi_status status, const char* call) {
  if (status == napi_ok) return true;
  const napi_extended_error_info* info = nullptr;
  const std::string reason = napi_get_last_error_info(env, &info) == napi_ok && info && info->error_message
                                 ? std::string(": ") + info->error_message
                                 : "";
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return false;
  napi_throw_error(env, nullptr, (std::string("@kotune/native: ") + call + " failed" + reason).c_str());
  return false;
}

// Runs an N-API call; on failure throws (see Ok) and returns from the calling function: nullptr from a
// napi_value function, false from a bool one.
#define NAPI_CALL(env, call)                   \
  do {                                         \
    if (!Ok((env), (call), #call)) return {}; \
  } while (0)

bool Float32Data(napi_env env, napi_value value, float** data, size_t* length, const char* name) {
  bool is_typed = false;
  NAPI_CALL(env, napi_is_typedarray(env, value, &is_typed));
  napi_typedarray_type type;
  void* raw = nullptr;
  if (!is_typed || napi_get_typedarray_info(env, value, &type, length, &raw, nullptr, nullptr) != napi_ok ||
      type != napi_float32_array) {
    napi_throw_type_error(env, nullptr, (std::string(name) + " must be a Float32Array").c_str());
    return false;
  }
  *data = static_cast<float*>(raw);
  return true;
}

// gemm(kernel, a, b, c, batch, m, n, k, transA, transB): c[i] = op(a[i]) · op(b[i]) for i < batch,
// each operand's entries stored one after another; c is overwritten.
napi_value JsGemm(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 10) {
    napi_throw_type_error(env, nullptr, "gemm(kernel, a, b, c, batch, m, n, k, transA, transB) takes 10 arguments");
    return nullptr;
  }
  int32_t kernel, batch, m, n, k;
  bool trans_a, trans_b;
  float *a, *b, *c;
  size_t a_len, b_len, c_len;
  if (napi_get_value_int32(env, argv[0], &kernel) != napi_ok || napi_get_value_int32(env, argv[4], &batch) != napi_ok ||
      napi_get_value_int32(env, argv[5], &m) != napi_ok || napi_get_value_int32(env, argv[6], &n) != napi_ok ||
      napi_get_value_int32(env, argv[7], &k) != napi_ok || napi_get_value_bool(env, argv[8], &trans_a) != napi_ok ||
      napi_get_value_bool(env, argv[9], &trans_b) != napi_ok) {
    napi_throw_type_error(env, nullptr, "gemm: kernel, batch, m, n, k must be integers and transA, transB booleans");
    return nullptr;
  }
  if (!Float32Data(env, argv[1], &a, &a_len, "a") || !Float32Data(env, argv[2], &b, &b_len, "b") ||
      !Float32Data(env, argv[3], &c, &c_len, "c")) {
    return nullptr;
  }
  if (batch < 0 || m < 0 || n < 0 || k < 0 || a_len != size_t(batch) * m * k || b_len != size_t(batch) * k * n ||
      c_len != size_t(batch) * m * n) {
    napi_throw_range_error(env, nullptr, "gemm: array lengths do not match batch x m x k, batch x k x n, batch x m x n");
    return nullptr;
  }
  if ((kernel == kOpenBlas && !openblas.sgemm) || (kernel == kBuiltinAvx2 && kIsa == Isa::kNone) || kernel < kBuiltin ||
      kernel > kBuiltinAvx2) {
    napi_throw_error(env, nullptr, "gemm: that kernel is not available on this machine");
    return nullptr;
  }
  if (kernel != kOpenBlas) {
    ParallelBuiltinGemm(kernel == kBuiltinAvx2 ? Isa::kAvx2 : kIsa, batch, m, n, k, a, trans_a, b, trans_b, c);
    return nullptr;
  }
  OpenBlasGemm(batch, m, n, k, a, trans_a, b, trans_b, c);
  return nullptr;
}

// adamw(p, g, m, v, pOut, mOut, vOut, [beta1, 1-beta1, beta2, 1-beta2, decay, bc2Sqrt, eps, stepSize, gradScale]):
// per element, in float32 and in this order (the order of @kotune/optim's AdamW ops):
//   g ← g·gradScale;  m ← m·β₁ + g·(1−β₁);  v ← v·β₂ + (g·g)·(1−β₂);  p ← p·decay (1: no decay)
//   p ← p − (m / (√v / bc2Sqrt + ε))·stepSize
napi_value JsAdamW(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 8) {
    napi_throw_type_error(env, nullptr, "adamw(p, g, m, v, pOut, mOut, vOut, constants) takes 8 arguments");
    return nullptr;
  }
  const char* names[7] = {"p", "g", "m", "v", "pOut", "mOut", "vOut"};
  float* arrays[7];
  size_t lengths[7];
  for (int i = 0; i < 7; i++) {
    if (!Float32Data(env, argv[i], &arrays[i], &lengths[i], names[i])) return nullptr;
    if (lengths[i] != lengths[0]) {
      napi_throw_range_error(env, nullptr, "adamw: all seven arrays must have the same length");
      return nullptr;
    }
  }
  float constants[9];
  for (uint32_t i = 0; i < 9; i++) {
    napi_value element;
    double value;
    if (napi_get_element(env, argv[7], i, &element) != napi_ok || napi_get_value_double(env, element, &value) != napi_ok) {
      napi_throw_type_error(env, nullptr, "adamw: constants must be an array of 9 numbers");
      return nullptr;
    }
    constants[i] = static_cast<float>(value);  // as TensorFlow.js makes a float32 scalar of a number
  }
  const AdamWConstants c{constants[0], constants[1], constants[2], constants[3], constants[4],
                         constants[5], constants[6], constants[7], constants[8]};
  AdamWUpdate(arrays[0], arrays[1], arrays[2], arrays[3], arrays[4], arrays[5], arrays[6], lengths[0], c);
  return nullptr;
}

// sumOfSquares(x): Σ x² accumulated in double (a float32 sum over millions of elements loses digits).
napi_value JsSumOfSquares(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr));
  if (argc != 1) {
    napi_throw_type_error(env, nullptr, "sumOfSquares(x) takes 1 argument");
    return nullptr;
  }
  float* x;
  size_t length;
  if (!Float32Data(env, arg, &x, &length, "x")) return nullptr;
  napi_value result;
  NAPI_CALL(env, napi_create_double(env, SumOfSquares(x, length), &result));
  return result;
}

// Fetches the call's arguments as exactly `count` Float32Arrays of one length.
bool EqualFloat32Arrays(napi_env env, napi_callback_info info, size_t count, const char* const* names, float** arrays,
                        size_t* length, const char* call) {
  size_t argc = 8;
  napi_value argv[8];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != count) {
    napi_throw_type_error(env, nullptr, (std::string(call) + ": expected " + std::to_string(count) + " Float32Arrays").c_str());
    return false;
  }
  for (size_t i = 0; i < count; i++) {
    size_t n;
    if (!Float32Data(env, argv[i], &arrays[i], &n, names[i])) return false;
    if (i == 0) *length = n;
    if (n != *length) {
      napi_throw_range_error(env, nullptr, (std::string(call) + ": the arrays must have the same length").c_str());
      return false;
    }
  }
  return true;
}

// gelu(x, y): y = x·Φ(x), PyTorch's exact (erf) GELU.
napi_value JsGelu(napi_env env, napi_callback_info info) {
  static const char* const names[] = {"x", "y"};
  float* a[2];
  size_t n;
  if (!EqualFloat32Arrays(env, info, 2, names, a, &n, "gelu")) return nullptr;
  Gelu(a[0], a[1], n);
  return nullptr;
}

// geluGrad(x, dy, dx): dx = dy·(Φ(x) + x·φ(x)) (PyTorch's GeluBackward).
napi_value JsGeluGrad(napi_env env, napi_callback_info info) {
  static const char* const names[] = {"x", "dy", "dx"};
  float* a[3];
  size_t n;
  if (!EqualFloat32Arrays(env, info, 3, names, a, &n, "geluGrad")) return nullptr;
  GeluGrad(a[0], a[1], a[2], n);
  return nullptr;
}

// dropout(x, y, seed, threshold, scale): @kotune/engine's dropout mask applied (see elementwise.cc).
napi_value JsDropout(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  float *x, *y;
  size_t n, m;
  uint32_t seed, threshold;
  double scale;
  if (argc != 5 || !Float32Data(env, argv[0], &x, &n, "x") || !Float32Data(env, argv[1], &y, &m, "y")) {
    if (argc != 5) napi_throw_type_error(env, nullptr, "dropout(x, y, seed, threshold, scale) takes 5 arguments");
    return nullptr;
  }
  if (n != m) {
    napi_throw_range_error(env, nullptr, "dropout: x and y must have the same length");
    return nullptr;
  }
  if (napi_get_value_uint32(env, argv[2], &seed) != napi_ok || napi_get_value_uint32(env, argv[3], &threshold) != napi_ok ||
      napi_get_value_double(env, argv[4], &scale) != napi_ok) {
    napi_throw_type_error(env, nullptr, "dropout: seed and threshold must be 32-bit unsigned integers, scale a number");
    return nullptr;
  }
  Dropout(x, y, n, seed, threshold, static_cast<float>(scale));
  return nullptr;
}

// layerNorm(x, weight, bias, y, mean, rstd, eps): over each row of `width` = weight's length,
// y = (x − mean)·rstd·weight + bias with rstd = 1/√(biased variance + eps), the moments accumulated in
// double; `mean` and `rstd` (one per row) are kept for the backward instead of the normalised rows.
napi_value JsLayerNorm(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  float *x, *w, *b, *y, *mean, *rstd;
  size_t n, width, b_len, y_len, rows, rstd_len;
  double eps;
  if (argc != 7) {
    napi_throw_type_error(env, nullptr, "layerNorm(x, weight, bias, y, mean, rstd, eps) takes 7 arguments");
    return nullptr;
  }
  if (!Float32Data(env, argv[0], &x, &n, "x") || !Float32Data(env, argv[1], &w, &width, "weight") ||
      !Float32Data(env, argv[2], &b, &b_len, "bias") || !Float32Data(env, argv[3], &y, &y_len, "y") ||
      !Float32Data(env, argv[4], &mean, &rows, "mean") || !Float32Data(env, argv[5], &rstd, &rstd_len, "rstd")) {
    return nullptr;
  }
  if (napi_get_value_double(env, argv[6], &eps) != napi_ok) {
    napi_throw_type_error(env, nullptr, "layerNorm: eps must be a number");
    return nullptr;
  }
  if (width == 0 || b_len != width || y_len != n || n != rows * width || rstd_len != rows) {
    napi_throw_range_error(env, nullptr, "layerNorm: lengths must be x, y: rows x width; weight, bias: width; mean, rstd: rows");
    return nullptr;
  }
  LayerNormRows(x, w, b, y, mean, rstd, rows, width, eps);
  return nullptr;
}

// layerNormGrad(x, weight, mean, rstd, dy, dx, dweight, dbias): PyTorch's native_layer_norm_backward with
// x̂ = (x − mean)·rstd and g = dy·weight per row: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); dweight = Σ_rows dy·x̂;
// dbias = Σ_rows dy (sums in double).
napi_value JsLayerNormGrad(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 8) {
    napi_throw_type_error(env, nullptr, "layerNormGrad(x, weight, mean, rstd, dy, dx, dweight, dbias) takes 8 arguments");
    return nullptr;
  }
  static const char* const names[] = {"x", "weight", "mean", "rstd", "dy", "dx", "dweight", "dbias"};
  float* a[8];
  size_t len[8];
  for (int i = 0; i < 8; i++) {
    if (!Float32Data(env, argv[i], &a[i], &len[i], names[i])) return nullptr;
  }
  const size_t n = len[0], width = len[1], rows = len[2];
  if (width == 0 || n != rows * width || len[3] != rows || len[4] != n || len[5] != n || len[6] != width || len[7] != width) {
    napi_throw_range_error(env, nullptr, "layerNormGrad: lengths must be x, dy, dx: rows x width; weight, dweight, dbias: width; mean, rstd: rows");
    return nullptr;
  }
  LayerNormGradRows(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], rows, width);
  return nullptr;
}

// softmax(scores, mask, probs, width, rowsPerMask, divisor): attention probabilities over rows of `width`,
// p = softmax(scores / divisor + mask), the mask row of row r at mask[(r / rowsPerMask)·width].
napi_value JsSoftmax(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  float *scores, *mask, *probs;
  size_t n, mask_len, probs_len;
  uint32_t width, rows_per_mask;
  double divisor;
  if (argc != 6) {
    napi_throw_type_error(env, nullptr, "softmax(scores, mask, probs, width, rowsPerMask, divisor) takes 6 arguments");
    return nullptr;
  }
  if (!Float32Data(env, argv[0], &scores, &n, "scores") || !Float32Data(env, argv[1], &mask, &mask_len, "mask") ||
      !Float32Data(env, argv[2], &probs, &probs_len, "probs")) {
    return nullptr;
  }
  if (napi_get_value_uint32(env, argv[3], &width) != napi_ok || napi_get_value_uint32(env, argv[4], &rows_per_mask) != napi_ok ||
      napi_get_value_double(env, argv[5], &divisor) != napi_ok || width == 0 || rows_per_mask == 0) {
    napi_throw_type_error(env, nullptr, "softmax: width and rowsPerMask must be positive integers, divisor a number");
    return nullptr;
  }
  const size_t rows = n / width;
  if (n % width != 0 || probs_len != n || mask_len != ((rows + rows_per_mask - 1) / rows_per_mask) * width ||
      rows % rows_per_mask != 0) {
    napi_throw_range_error(env, nullptr, "softmax: scores and probs must be rows x width, mask (rows / rowsPerMask) x width");
    return nullptr;
  }
  SoftmaxRows(scores, mask, probs, rows, width, rows_per_mask, static_cast<float>(divisor));
  return nullptr;
}

// softmaxGrad(probs, dy, dscores, width, divisor): dscores = (dy·p − Σ(dy·p)·p) / divisor per row, the sum in
// double (autodiff's Softmax and RealDiv rules, as @kotune/engine's tensor ops do them).
napi_value JsSoftmaxGrad(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  float *p, *dy, *ds;
  size_t n, dy_len, ds_len;
  uint32_t width;
  double divisor;
  if (argc != 5) {
    napi_throw_type_error(env, nullptr, "softmaxGrad(probs, dy, dscores, width, divisor) takes 5 arguments");
    return nullptr;
  }
  if (!Float32Data(env, argv[0], &p, &n, "probs") || !Float32Data(env, argv[1], &dy, &dy_len, "dy") ||
      !Float32Data(env, argv[2], &ds, &ds_len, "dscores")) {
    return nullptr;
  }
  if (napi_get_value_uint32(env, argv[3], &width) != napi_ok || napi_get_value_double(env, argv[4], &divisor) != napi_ok ||
      width == 0 || n % width != 0 || dy_len != n || ds_len != n) {
    napi_throw_range_error(env, nullptr, "softmaxGrad: probs, dy and dscores must be rows x width of one length");
    return nullptr;
  }
  SoftmaxGradRows(p, dy, ds, n / width, width, static_cast<float>(divisor));
  return nullptr;
}

// dotRows(queries, rows, dim, out): out[j·n + r] = Σ_d queries[j][d]·rows[r][d], each sum in double and in
// order over d (see search.cc).
napi_value JsDotRows(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  float *q, *x;
  size_t q_len, x_len, out_len;
  uint32_t dim;
  void* raw = nullptr;
  napi_typedarray_type type;
  bool is_typed = false;
  if (argc != 4) {
    napi_throw_type_error(env, nullptr, "dotRows(queries, rows, dim, out) takes 4 arguments");
    return nullptr;
  }
  if (!Float32Data(env, argv[0], &q, &q_len, "queries") || !Float32Data(env, argv[1], &x, &x_len, "rows")) return nullptr;
  NAPI_CALL(env, napi_is_typedarray(env, argv[3], &is_typed));
  if (napi_get_value_uint32(env, argv[2], &dim) != napi_ok || dim == 0 || !is_typed ||
      napi_get_typedarray_info(env, argv[3], &type, &out_len, &raw, nullptr, nullptr) != napi_ok || type != napi_float64_array) {
    napi_throw_type_error(env, nullptr, "dotRows: dim must be a positive integer and out a Float64Array");
    return nullptr;
  }
  if (q_len % dim != 0 || x_len % dim != 0 || out_len != (q_len / dim) * (x_len / dim)) {
    napi_throw_range_error(env, nullptr, "dotRows: queries and rows must hold whole vectors of dim, out one score per pair");
    return nullptr;
  }
  DotRows(q, q_len / dim, x, x_len / dim, dim, static_cast<double*>(raw));
  return nullptr;
}

#if KOTUNE_X86_SIMD  // the fused encoder layer runs on AVX2 (encoder.cc): other builds do not export it
// The encoder kernel for a gemm kernel id (the same ids as gemm's), or false with an error thrown.
bool EncoderKernelOf(napi_env env, napi_value value, EncoderKernel* kernel) {
  int32_t id;
  if (napi_get_value_int32(env, value, &id) != napi_ok || id < kBuiltin || id > kBuiltinAvx2 ||
      (id == kOpenBlas && !openblas.sgemm) || kIsa == Isa::kNone) {
    napi_throw_error(env, nullptr, "encoder layer: that kernel is not available on this machine (the encoder needs AVX2 and FMA)");
    return false;
  }
  *kernel = static_cast<EncoderKernel>(id);
  return true;
}

bool PositiveInts(napi_env env, const napi_value* values, int count, int32_t* out, const char* what) {
  for (int i = 0; i < count; i++) {
    if (napi_get_value_int32(env, values[i], &out[i]) != napi_ok || out[i] <= 0) {
      napi_throw_type_error(env, nullptr, what);
      return false;
    }
  }
  return true;
}

// packEncoderLayer(kernel, weights, hidden, ffn): a new Float32Array holding the layer's 16 tensors (query weight,
// bias, key weight, bias, value weight, bias, attention output dense weight, bias, its LayerNorm weight, bias,
// intermediate dense weight, bias, output dense weight, bias, its LayerNorm weight, bias) laid out for `kernel`.
napi_value JsPackEncoderLayer(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  EncoderKernel kernel;
  int32_t sizes[2];
  if (argc != 4) {
    napi_throw_type_error(env, nullptr, "packEncoderLayer(kernel, weights, hidden, ffn) takes 4 arguments");
    return nullptr;
  }
  if (!EncoderKernelOf(env, argv[0], &kernel) || !PositiveInts(env, argv + 2, 2, sizes, "packEncoderLayer: hidden and ffn must be positive integers")) return nullptr;
  const size_t hidden = sizes[0], ffn = sizes[1];
  const size_t lengths[16] = {hidden * hidden, hidden, hidden * hidden, hidden, hidden * hidden, hidden, hidden * hidden, hidden,
                              hidden, hidden, ffn * hidden, ffn, hidden * ffn, hidden, hidden, hidden};
  float* t[16];
  for (uint32_t i = 0; i < 16; i++) {
    napi_value element;
    size_t length;
    if (napi_get_element(env, argv[1], i, &element) != napi_ok || !Float32Data(env, element, &t[i], &length, "each weight")) return nullptr;
    if (length != lengths[i]) {
      napi_throw_range_error(env, nullptr, ("packEncoderLayer: weight " + std::to_string(i) + " has " + std::to_string(length) +
                                            " floats, the layer's shapes need " + std::to_string(lengths[i])).c_str());
      return nullptr;
    }
  }
  const EncoderLayerWeights w{{t[0], t[2], t[4]}, {t[1], t[3], t[5]}, t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15]};
  const size_t length = PackedEncoderLayerLength(kernel, sizes[0], sizes[1]);
  void* data = nullptr;
  napi_value buffer, result;
  NAPI_CALL(env, napi_create_arraybuffer(env, length * sizeof(float), &data, &buffer));
  NAPI_CALL(env, napi_create_typedarray(env, napi_float32_array, length, buffer, 0, &result));
  PackEncoderLayer(kernel, w, sizes[0], sizes[1], static_cast<float*>(data));
  return result;
}

// encoderLayer(kernel, packed, x, mask, y, [batch, seq, hidden, heads, ffn], divisor, eps): y = the layer (see
// encoder.cc) applied to x [batch·seq, hidden] with the additive mask [batch, seq]; y must not be x.
napi_value JsEncoderLayer(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 8) {
    napi_throw_type_error(env, nullptr, "encoderLayer(kernel, packed, x, mask, y, [batch, seq, hidden, heads, ffn], divisor, eps) takes 8 arguments");
    return nullptr;
  }
  EncoderKernel kernel;
  float *packed, *x, *mask, *y;
  size_t packed_len, x_len, mask_len, y_len;
  int32_t dims[5];
  double divisor, eps;
  if (!EncoderKernelOf(env, argv[0], &kernel) || !Float32Data(env, argv[1], &packed, &packed_len, "packed") ||
      !Float32Data(env, argv[2], &x, &x_len, "x") || !Float32Data(env, argv[3], &mask, &mask_len, "mask") ||
      !Float32Data(env, argv[4], &y, &y_len, "y")) {
    return nullptr;
  }
  napi_value dim_values[5];
  for (uint32_t i = 0; i < 5; i++) {
    if (napi_get_element(env, argv[5], i, &dim_values[i]) != napi_ok) dim_values[i] = nullptr;
  }
  if (!PositiveInts(env, dim_values, 5, dims, "encoderLayer: batch, seq, hidden, heads and ffn must be positive integers")) return nullptr;
  if (napi_get_value_double(env, argv[6], &divisor) != napi_ok || napi_get_value_double(env, argv[7], &eps) != napi_ok) {
    napi_throw_type_error(env, nullptr, "encoderLayer: divisor and eps must be numbers");
    return nullptr;
  }
  const EncoderShape shape{dims[0], dims[1], dims[2], dims[3], dims[4], static_cast<float>(divisor), static_cast<float>(eps)};
  const size_t tokens = size_t(shape.batch) * shape.seq;
  if (shape.hidden % shape.heads != 0 || shape.hidden / shape.heads > kGemmDepthBlock || packed_len != PackedEncoderLayerLength(kernel, shape.hidden, shape.ffn) ||
      x_len != tokens * shape.hidden || y_len != x_len || mask_len != tokens || x == y) {
    napi_throw_range_error(env, nullptr, "encoderLayer: x and y must be distinct [batch·seq, hidden] arrays, mask [batch, seq], packed the layer packed for this kernel and these sizes, hidden a multiple of heads with at most 256 dimensions a head");
    return nullptr;
  }
  EncoderLayerForward(kernel, packed, shape, x, mask, y);
  return nullptr;
}

// ---- the encoder layer for training (encoder_train.cc) ----------------------------------------------------------

// The layer's sizes from [batch, seq, hidden, heads, ffn], divisor and eps, checked; or false with an error thrown.
bool TrainShapeOf(napi_env env, napi_value dims_value, napi_value divisor_value, napi_value eps_value, EncoderShape* shape) {
  napi_value dim_values[5];
  int32_t dims[5];
  for (uint32_t i = 0; i < 5; i++) {
    if (napi_get_element(env, dims_value, i, &dim_values[i]) != napi_ok) dim_values[i] = nullptr;
  }
  if (!PositiveInts(env, dim_values, 5, dims, "encoder layer (training): batch, seq, hidden, heads and ffn must be positive integers")) return false;
  double divisor, eps;
  if (napi_get_value_double(env, divisor_value, &divisor) != napi_ok || napi_get_value_double(env, eps_value, &eps) != napi_ok) {
    napi_throw_type_error(env, nullptr, "encoder layer (training): divisor and eps must be numbers");
    return false;
  }
  *shape = EncoderShape{dims[0], dims[1], dims[2], dims[3], dims[4], static_cast<float>(divisor), static_cast<float>(eps)};
  if (shape->hidden % shape->heads != 0 || shape->hidden / shape->heads > kGemmDepthBlock) {
    napi_throw_range_error(env, nullptr, "encoder layer (training): hidden must be a multiple of heads, with at most 256 dimensions a head");
    return false;
  }
  return true;
}

// The 16 tensors of a layer (packEncoderLayer's order) as Float32Arrays of the layer's lengths, into t.
bool LayerTensors(napi_env env, napi_value array, const EncoderShape& s, float** t, const char* what) {
  const size_t h = s.hidden, f = s.ffn;
  const size_t lengths[16] = {h * h, h, h * h, h, h * h, h, h * h, h, h, h, f * h, f, h * f, h, h, h};
  for (uint32_t i = 0; i < 16; i++) {
    napi_value element;
    size_t length;
    if (napi_get_element(env, array, i, &element) != napi_ok || !Float32Data(env, element, &t[i], &length, what)) return false;
    if (length != lengths[i]) {
      napi_throw_range_error(env, nullptr, (std::string(what) + " " + std::to_string(i) + " has " + std::to_string(length) +
                                            " floats, the layer's shapes need " + std::to_string(lengths[i])).c_str());
      return false;
    }
  }
  return true;
}

// [attention threshold, attention scale, attention seed, hidden threshold, hidden scale, attention output seed, output
// seed]: each site's mask as Dropout's; a threshold of 0 keeps every element (that site off).
bool DropoutOf(napi_env env, napi_value array, EncoderDropout* d) {
  double v[7];
  for (uint32_t i = 0; i < 7; i++) {
    napi_value element;
    if (napi_get_element(env, array, i, &element) != napi_ok || napi_get_value_double(env, element, &v[i]) != napi_ok) {
      napi_throw_type_error(env, nullptr, "encoder layer (training): dropout must be 7 numbers");
      return false;
    }
  }
  const auto u32 = [](double x) { return static_cast<uint32_t>(static_cast<uint64_t>(x) & 0xffffffffu); };
  *d = EncoderDropout{v[0] > 0, u32(v[2]), u32(v[0]), static_cast<float>(v[1]), v[3] > 0, u32(v[5]), u32(v[6]), u32(v[3]),
                      static_cast<float>(v[4])};
  return true;
}

// encoderTrainStateLength([batch, seq, hidden, heads, ffn]): floats of the state the training forward keeps.
napi_value JsEncoderTrainStateLength(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], one;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  NAPI_CALL(env, napi_create_double(env, 1.0, &one));
  EncoderShape shape;
  if (argc != 1 || !TrainShapeOf(env, argv[0], one, one, &shape)) return nullptr;
  napi_value result;
  NAPI_CALL(env, napi_create_double(env, static_cast<double>(EncoderTrainStateLength(shape)), &result));
  return result;
}

// encoderLayerTrainForward(kernel, weights, x, mask, y, state | null, dims, divisor, eps, dropout): y = the layer in
// training mode, keeping its backward's state (EncoderTrainStateLength floats) unless state is null.
napi_value JsEncoderLayerTrainForward(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 10) {
    napi_throw_type_error(env, nullptr, "encoderLayerTrainForward(kernel, weights, x, mask, y, state, dims, divisor, eps, dropout) takes 10 arguments");
    return nullptr;
  }
  EncoderKernel kernel;
  EncoderShape s;
  EncoderDropout dropout;
  float *t[16], *x, *mask, *y, *state = nullptr;
  size_t x_len, mask_len, y_len, state_len = 0;
  napi_valuetype state_type;
  NAPI_CALL(env, napi_typeof(env, argv[5], &state_type));
  if (!EncoderKernelOf(env, argv[0], &kernel) || !TrainShapeOf(env, argv[6], argv[7], argv[8], &s) || !LayerTensors(env, argv[1], s, t, "weight") ||
      !Float32Data(env, argv[2], &x, &x_len, "x") || !Float32Data(env, argv[3], &mask, &mask_len, "mask") ||
      !Float32Data(env, argv[4], &y, &y_len, "y") || (state_type != napi_null && !Float32Data(env, argv[5], &state, &state_len, "state")) ||
      !DropoutOf(env, argv[9], &dropout)) {
    return nullptr;
  }
  const size_t tokens = size_t(s.batch) * s.seq;
  if (x_len != tokens * s.hidden || y_len != x_len || mask_len != tokens || x == y || (state && state_len != EncoderTrainStateLength(s))) {
    napi_throw_range_error(env, nullptr, "encoderLayerTrainForward: x and y must be distinct [batch·seq, hidden] arrays, mask [batch, seq], state encoderTrainStateLength floats");
    return nullptr;
  }
  const EncoderLayerWeights w{{t[0], t[2], t[4]}, {t[1], t[3], t[5]}, t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15]};
  EncoderLayerTrainForward(kernel, w, s, dropout, x, mask, y, state);
  return nullptr;
}

// encoderLayerBackward(kernel, weights, x, mask, state, dy, dx, grads, dims, divisor, eps, dropout): dx and the 16
// tensors' gradients (written, in the weights' order) from the training forward's x, mask and state.
napi_value JsEncoderLayerBackward(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 12) {
    napi_throw_type_error(env, nullptr, "encoderLayerBackward(kernel, weights, x, mask, state, dy, dx, grads, dims, divisor, eps, dropout) takes 12 arguments");
    return nullptr;
  }
  EncoderKernel kernel;
  EncoderShape s;
  EncoderDropout dropout;
  float *t[16], *g[16], *x, *mask, *state, *dy, *dx;
  size_t x_len, mask_len, state_len, dy_len, dx_len;
  if (!EncoderKernelOf(env, argv[0], &kernel) || !TrainShapeOf(env, argv[8], argv[9], argv[10], &s) || !LayerTensors(env, argv[1], s, t, "weight") ||
      !Float32Data(env, argv[2], &x, &x_len, "x") || !Float32Data(env, argv[3], &mask, &mask_len, "mask") ||
      !Float32Data(env, argv[4], &state, &state_len, "state") || !Float32Data(env, argv[5], &dy, &dy_len, "dy") ||
      !Float32Data(env, argv[6], &dx, &dx_len, "dx") || !LayerTensors(env, argv[7], s, g, "gradient") || !DropoutOf(env, argv[11], &dropout)) {
    return nullptr;
  }
  const size_t tokens = size_t(s.batch) * s.seq;
  if (x_len != tokens * s.hidden || dy_len != x_len || dx_len != x_len || mask_len != tokens || state_len != EncoderTrainStateLength(s) ||
      dx == dy || dx == x) {
    napi_throw_range_error(env, nullptr, "encoderLayerBackward: x, dy and dx must be [batch·seq, hidden] arrays (dx apart from both), mask [batch, seq], state encoderTrainStateLength floats");
    return nullptr;
  }
  const EncoderLayerWeights w{{t[0], t[2], t[4]}, {t[1], t[3], t[5]}, t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15]};
  const EncoderLayerGrads grads{{g[0], g[2], g[4]}, {g[1], g[3], g[5]}, g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]};
  EncoderLayerBackward(kernel, w, s, dropout, x, mask, state, dy, dx, grads);
  return nullptr;
}

// ---- sums.cc ------------------------------------------------------------------------------------------------------

#endif  // KOTUNE_X86_SIMD

// elementwise(op, a, b, out): out = a op b (0 add, 1 multiply, 2 divide), b of a's length or a single float.
napi_value JsElementwise(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t op;
  float *a, *b, *out;
  size_t a_len, b_len, out_len;
  if (argc != 4 || napi_get_value_int32(env, argv[0], &op) != napi_ok || op < 0 || op > 2) {
    napi_throw_type_error(env, nullptr, "elementwise(op, a, b, out) takes an op 0, 1 or 2 and three Float32Arrays");
    return nullptr;
  }
  if (!Float32Data(env, argv[1], &a, &a_len, "a") || !Float32Data(env, argv[2], &b, &b_len, "b") || !Float32Data(env, argv[3], &out, &out_len, "out")) return nullptr;
  if (out_len != a_len || (b_len != a_len && b_len != 1)) {
    napi_throw_range_error(env, nullptr, "elementwise: out must have a's length, b a's or 1");
    return nullptr;
  }
  ElementwiseBinary(static_cast<ElementwiseOp>(op), a, b, b_len, out, a_len);
  return nullptr;
}

// embeddingGrad(ids, dy, out, width, padding): out [rows, width] = nn.Embedding's gradient (see sums.cc).
napi_value JsEmbeddingGrad(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  bool is_typed = false;
  napi_typedarray_type type;
  size_t ids_len = 0, dy_len, out_len;
  void* ids = nullptr;
  float *dy, *out;
  int32_t width;
  int64_t padding;
  if (argc != 5 || napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[0], &type, &ids_len, &ids, nullptr, nullptr) != napi_ok || type != napi_int32_array) {
    napi_throw_type_error(env, nullptr, "embeddingGrad(ids, dy, out, width, padding) takes ids as an Int32Array");
    return nullptr;
  }
  if (!Float32Data(env, argv[1], &dy, &dy_len, "dy") || !Float32Data(env, argv[2], &out, &out_len, "out")) return nullptr;
  if (napi_get_value_int32(env, argv[3], &width) != napi_ok || width <= 0 || napi_get_value_int64(env, argv[4], &padding) != napi_ok) {
    napi_throw_type_error(env, nullptr, "embeddingGrad: width must be a positive integer, padding an integer (-1: none)");
    return nullptr;
  }
  if (dy_len != ids_len * size_t(width) || out_len % size_t(width) != 0) {
    napi_throw_range_error(env, nullptr, "embeddingGrad: dy must hold one row of width per id, out whole rows");
    return nullptr;
  }
  EmbeddingGrad(static_cast<const int32_t*>(ids), ids_len, dy, out_len / width, width, padding, out);
  return nullptr;
}

napi_value JsOpenBlasThreads(napi_env env, napi_callback_info) {
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, openblas.get_num_threads ? openblas.get_num_threads() : 0, &result));
  return result;
}

// keepFreedMemory() -> bool: glibc's malloc maps every block over its dynamic threshold (at most 32 MB) afresh
// and unmaps it when it is freed, so each large tensor of a training step on the cpu backend (a layer's saved
// activations, the word embeddings' gradient: gigabytes a step at XLM-R's size) is page-faulted and zeroed by the
// kernel again, measured at ~1.3 s a GB on this machine's VM. This serves all blocks from the heap and keeps freed
// ones there (up to 2 GB at its top) for the next step, which reuses them. Process-wide; false where the C library
// is not glibc (nothing changed).
napi_value JsKeepFreedMemory(napi_env env, napi_callback_info) {
  bool kept = false;
#if defined(__GLIBC__)
  kept = mallopt(M_MMAP_THRESHOLD, INT_MAX) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
#endif
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, kept, &result));
  return result;
}

bool SetString(napi_env env, napi_value object, const char* key, const std::string& value) {
  napi_value v;
  NAPI_CALL(env, napi_create_string_utf8(env, value.c_str(), value.size(), &v));
  NAPI_CALL(env, napi_set_named_property(env, object, key, v));
  return true;
}

bool SetFunction(napi_env env, napi_value object, const char* key, napi_callback fn) {
  napi_value v;
  NAPI_CALL(env, napi_create_function(env, key, NAPI_AUTO_LENGTH, fn, nullptr, &v));
  NAPI_CALL(env, napi_set_named_property(env, object, key, v));
  return true;
}

bool SetInt(napi_env env, napi_value object, const char* key, int32_t value) {
  napi_value v;
  NAPI_CALL(env, napi_create_int32(env, value, &v));
  NAPI_CALL(env, napi_set_named_property(env, object, key, v));
  return true;
}

bool SetBool(napi_env env, napi_value object, const char* key, bool value) {
  napi_value v;
  NAPI_CALL(env, napi_get_boolean(env, value, &v));
  NAPI_CALL(env, napi_set_named_property(env, object, key, v));
  return true;
}

// The exports, once per JavaScript environment (the main thread and each worker that loads the addon); what is
// process-wide is set up once: the BLAS (OpenOpenBlas's call_once), the CPU's ISA and the thread count (static
// initialisation when the library loads), the worker threads (on first use).
napi_value Init(napi_env env, napi_value exports) {
  OpenOpenBlas();
  const struct {
    const char* name;
    napi_callback fn;
  } functions[] = {
      {"gemm", JsGemm},
      {"adamw", JsAdamW},
      {"sumOfSquares", JsSumOfSquares},
      {"gelu", JsGelu},
      {"geluGrad", JsGeluGrad},
      {"dropout", JsDropout},
      {"layerNorm", JsLayerNorm},
      {"layerNormGrad", JsLayerNormGrad},
      {"dotRows", JsDotRows},
      {"softmax", JsSoftmax},
      {"softmaxGrad", JsSoftmaxGrad},
      {"elementwise", JsElementwise},
      {"embeddingGrad", JsEmbeddingGrad},
#if KOTUNE_X86_SIMD
      {"packEncoderLayer", JsPackEncoderLayer},
      {"encoderLayer", JsEncoderLayer},
      {"encoderTrainStateLength", JsEncoderTrainStateLength},
      {"encoderLayerTrainForward", JsEncoderLayerTrainForward},
      {"encoderLayerBackward", JsEncoderLayerBackward},
#endif
      {"openBlasThreads", JsOpenBlasThreads},
      {"keepFreedMemory", JsKeepFreedMemory},
  };
  for (const auto& f : functions) {
    if (!SetFunction(env, exports, f.name, f.fn)) return nullptr;
  }
  const bool ok = SetString(env, exports, "openBlasLibrary", openblas.library) &&
                  SetString(env, exports, "openBlasConfig", openblas.config) &&
                  SetString(env, exports, "blasVendor", openblas.vendor) &&
                  SetString(env, exports, "builtinIsa", kIsa == Isa::kAvx512 ? "avx512" : kIsa == Isa::kAvx2 ? "avx2" : KOTUNE_ARM_NEON ? "neon" : "portable") &&
                  SetBool(env, exports, "encoderSupported", KOTUNE_X86_SIMD && kIsa != Isa::kNone) &&
                  SetInt(env, exports, "builtinThreads", kBuiltinThreads) &&
                  SetString(env, exports, "sourceHash", KOTUNE_SOURCE_HASH) &&
                  SetString(env, exports, "buildIsa", KOTUNE_BUILD_ISA);
  return ok ? exports : nullptr;
}

}  // namespace

}  // namespace kotune

NAPI_MODULE_INIT() { return kotune::Init(env, exports); }
