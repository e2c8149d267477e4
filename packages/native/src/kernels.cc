// kotune's native kernels for the TensorFlow.js wasm and cpu backends, on float32 data that lives in
// JavaScript typed arrays (the wasm backend's heap, the cpu backend's arrays), without copies.
//
// Matrix product, C = op(A) · op(B), row-major. Why: tfjs-backend-wasm's products run on 128-bit wasm
// SIMD at ~28 GFLOP/s a core inside the model, where OpenBLAS reaches ~95 on the same core; products
// are ~80% of a training step. Two kernels:
//   - OpenBLAS's cblas_sgemm, opened with dlopen at load time (Debian: libopenblas0-pthread); no
//     header or link-time dependency, so the addon builds and loads where OpenBLAS is absent;
//   - a built-in blocked kernel for x86-64 with AVX2 and FMA or AVX-512 (the BLIS loop structure:
//     packed panels of B and A, a register tile) on OMP_NUM_THREADS threads, for machines without OpenBLAS.
// Neither changes what is computed, only the order of the float32 sums.
//
// AdamW update, sum of squares, GELU, dropout, LayerNorm, softmax and their gradients: one pass over memory each
// instead of several tensor ops, each a pass (AdamW as ops is a dozen; the cpu backend takes ~30 ns an
// element per op: 95 s a step for 278M parameters).
// The update does torch's float32 operations in the order @kotune/optim's tensor ops do them, so its
// results are the same bits (built with -ffp-contract=off: no fused multiply-adds).
#include <node_api.h>

#include <dlfcn.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

// ---- OpenBLAS, opened at run time -------------------------------------------------------------

enum CblasConstant { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using GetIntFn = int (*)();
using GetStringFn = char* (*)();

struct OpenBlas {
  SgemmFn sgemm = nullptr;
  GetIntFn get_num_threads = nullptr;
  std::string library;  // the soname that opened, e.g. libopenblas.so.0
  std::string config;   // openblas_get_config(): version, target, threading
};
OpenBlas openblas;

void OpenOpenBlas() {
  for (const char* name : {"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0"}) {
    void* handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!handle) continue;
    auto sgemm = reinterpret_cast<SgemmFn>(dlsym(handle, "cblas_sgemm"));
    if (!sgemm) continue;
    openblas.sgemm = sgemm;
    openblas.get_num_threads = reinterpret_cast<GetIntFn>(dlsym(handle, "openblas_get_num_threads"));
    auto get_config = reinterpret_cast<GetStringFn>(dlsym(handle, "openblas_get_config"));
    openblas.library = name;
    openblas.config = get_config ? get_config() : "";
    return;
  }
}

// ---- built-in kernel ----------------------------------------------------------------------------

// op(X) of a row-major X: op(X)(i, p) is X[i·ld + p], or X[p·ld + i] when transposed.
struct Matrix {
  const float* data;
  bool trans;
  int ld;
};

// Cache blocks: an A block (MC x KC) stays in L2, a B panel (KC x NR) in L1, a B block (KC x NC) in L3.
// The register tile MR x NR depends on the vector width (below); MC and NC are multiples of both.
constexpr int KC = 256, MC = 96, NC = 2048;

// Packs op(A)[i0:i0+mc, p0:p0+kc] as row panels of mr, p-major inside a panel, zero-padded.
void PackA(const Matrix& a, int i0, int mc, int p0, int kc, int mr, float* out) {
  for (int ir = 0; ir < mc; ir += mr) {
    const int rows = std::min(mr, mc - ir);
    for (int r = 0; r < mr; r++) {
      float* dst = out + r;
      if (r >= rows) {
        for (int p = 0; p < kc; p++) dst[p * mr] = 0.0f;
      } else if (!a.trans) {
        const float* src = a.data + int64_t(i0 + ir + r) * a.ld + p0;
        for (int p = 0; p < kc; p++) dst[p * mr] = src[p];
      } else {
        for (int p = 0; p < kc; p++) dst[p * mr] = a.data[int64_t(p0 + p) * a.ld + i0 + ir + r];
      }
    }
    out += mr * kc;
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

// Writes (or adds) the first rows x cols of a full register tile to C.
template <int MR, int NR>
void StoreEdge(const float (&tile)[MR][NR], float* c, int ldc, bool accumulate, int rows, int cols) {
  for (int r = 0; r < rows; r++) {
    float* row = c + int64_t(r) * ldc;
    for (int j = 0; j < cols; j++) row[j] = accumulate ? row[j] + tile[r][j] : tile[r][j];
  }
}

// The register tiles: C[0:rows, 0:cols] (+)= packed A panel · packed B panel, over kc. Each row of the
// tile is two vectors; the accumulators take 12 of AVX2's 16 registers and 24 of AVX-512's 32.
struct Avx2Tile {
  static constexpr int MR = 6, NR = 16;
  __attribute__((target("avx2,fma"))) static void Run(int kc, const float* a, const float* b, float* c, int ldc,
                                                      bool accumulate, int rows, int cols) {
    __m256 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int p = 0; p < kc; p++, a += MR, b += NR) {
      const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
      for (int r = 0; r < MR; r++) {
        const __m256 ar = _mm256_broadcast_ss(a + r);
        acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
      }
    }
    if (rows == MR && cols == NR) {
      for (int r = 0; r < MR; r++) {
        float* row = c + int64_t(r) * ldc;
        if (accumulate) {
          acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_loadu_ps(row));
          acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_loadu_ps(row + 8));
        }
        _mm256_storeu_ps(row, acc[r][0]);
        _mm256_storeu_ps(row + 8, acc[r][1]);
      }
      return;
    }
    alignas(32) float tile[MR][NR];
    for (int r = 0; r < MR; r++) {
      _mm256_store_ps(tile[r], acc[r][0]);
      _mm256_store_ps(tile[r] + 8, acc[r][1]);
    }
    StoreEdge(tile, c, ldc, accumulate, rows, cols);
  }
};

struct Avx512Tile {
  static constexpr int MR = 12, NR = 32;
  __attribute__((target("avx512f"))) static void Run(int kc, const float* a, const float* b, float* c, int ldc,
                                                    bool accumulate, int rows, int cols) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int p = 0; p < kc; p++, a += MR, b += NR) {
      const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
      for (int r = 0; r < MR; r++) {
        const __m512 ar = _mm512_set1_ps(a[r]);
        acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
      }
    }
    if (rows == MR && cols == NR) {
      for (int r = 0; r < MR; r++) {
        float* row = c + int64_t(r) * ldc;
        if (accumulate) {
          acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_loadu_ps(row));
          acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_loadu_ps(row + 16));
        }
        _mm512_storeu_ps(row, acc[r][0]);
        _mm512_storeu_ps(row + 16, acc[r][1]);
      }
      return;
    }
    alignas(64) float tile[MR][NR];
    for (int r = 0; r < MR; r++) {
      _mm512_store_ps(tile[r], acc[r][0]);
      _mm512_store_ps(tile[r] + 16, acc[r][1]);
    }
    StoreEdge(tile, c, ldc, accumulate, rows, cols);
  }
};

template <typename Tile>
void BlockedGemm(int m, int n, int k, const Matrix& a, const Matrix& b, float* c, int ldc) {
  static_assert(MC % Tile::MR == 0 && NC % Tile::NR == 0, "cache blocks must hold whole tiles");
  if (k == 0) {
    for (int i = 0; i < m; i++) std::fill(c + int64_t(i) * ldc, c + int64_t(i) * ldc + n, 0.0f);
    return;
  }
  thread_local std::vector<float> packed_a(MC * KC), packed_b(KC * NC);
  for (int j0 = 0; j0 < n; j0 += NC) {
    const int nc = std::min(NC, n - j0);
    for (int p0 = 0; p0 < k; p0 += KC) {
      const int kc = std::min(KC, k - p0);
      PackB(b, p0, kc, j0, nc, Tile::NR, packed_b.data());
      for (int i0 = 0; i0 < m; i0 += MC) {
        const int mc = std::min(MC, m - i0);
        PackA(a, i0, mc, p0, kc, Tile::MR, packed_a.data());
        for (int jr = 0; jr < nc; jr += Tile::NR) {
          for (int ir = 0; ir < mc; ir += Tile::MR) {
            Tile::Run(kc, packed_a.data() + ir * kc, packed_b.data() + jr * kc, c + int64_t(i0 + ir) * ldc + j0 + jr, ldc,
                      p0 > 0, std::min(Tile::MR, mc - ir), std::min(Tile::NR, nc - jr));
          }
        }
      }
    }
  }
}

// The widest tile this CPU runs, or none. AVX2 and FMA are required either way: the AVX2 tile
// (`builtin-avx2`), GELU and dropout run on them also where AVX-512 is present.
enum class Isa { kNone, kAvx2, kAvx512 };
Isa DetectIsa() {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return Isa::kNone;
  return __builtin_cpu_supports("avx512f") ? Isa::kAvx512 : Isa::kAvx2;
}
const Isa kIsa = DetectIsa();
const bool kBuiltinSupported = kIsa != Isa::kNone;

// C (row stride ldc) = op(A) · op(B) on one thread with the given tile.
void BuiltinGemm(Isa isa, int m, int n, int k, const Matrix& a, const Matrix& b, float* c, int ldc) {
  if (isa == Isa::kAvx512) {
    BlockedGemm<Avx512Tile>(m, n, k, a, b, c, ldc);
  } else {
    BlockedGemm<Avx2Tile>(m, n, k, a, b, c, ldc);
  }
}

// Threads for the built-in product: OMP_NUM_THREADS where set (as PyTorch and OpenBLAS read it), else the
// machine's cores.
int BuiltinThreadCount() {
  const char* env = std::getenv("OMP_NUM_THREADS");
  const int asked = env ? std::atoi(env) : 0;
  const int threads = asked > 0 ? asked : static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(threads, 1, 64);
}
const int kBuiltinThreads = BuiltinThreadCount();

// A fixed set of worker threads that run `task(i)` for i < count together with the calling thread. Created
// on first use and never destroyed (the workers wait on a condition variable; process exit ends them).
class Pool {
 public:
  explicit Pool(int threads) {
    for (int t = 1; t < threads; t++) std::thread([this] { Work(); }).detach();
    workers_ = threads - 1;
  }

  void Run(int count, const std::function<void(int)>& task) {
    std::lock_guard<std::mutex> one_at_a_time(run_mutex_);  // Node worker threads share this process-wide pool
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &task;
      count_ = count;
      next_ = 0;
      busy_ = workers_;
      generation_++;
    }
    start_.notify_all();
    Drain();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return busy_ == 0; });
    task_ = nullptr;
  }

 private:
  // Takes tasks until none is left.
  void Drain() {
    for (int i = next_++; i < count_; i = next_++) (*task_)(i);
  }

  void Work() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        start_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
      }
      Drain();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_ == 0) done_.notify_one();
    }
  }

  std::mutex run_mutex_, mutex_;
  std::condition_variable start_, done_;
  const std::function<void(int)>* task_ = nullptr;
  int count_ = 0;
  std::atomic<int> next_{0};
  int workers_ = 0, busy_ = 0;
  uint64_t generation_ = 0;
};

// `batch` products on kBuiltinThreads threads: whole batch entries per thread when there are enough of them,
// else each entry's columns split in ranges of whole register tiles (each thread packs its own B columns and
// writes its own C columns, so no two threads touch the same memory). Small products stay on one thread.
void ParallelBuiltinGemm(Isa isa, int batch, int m, int n, int k, const float* a, bool trans_a, const float* b,
                         bool trans_b, float* c) {
  if (batch == 0) return;  // nothing to compute (and the split below divides by batch)
  const int nr = isa == Isa::kAvx512 ? Avx512Tile::NR : Avx2Tile::NR;
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
  static Pool* pool = new Pool(kBuiltinThreads);
  pool->Run(batch * splits, task);
}

// ---- JavaScript bindings ------------------------------------------------------------------------

// kBuiltinAvx2 is the built-in kernel held to AVX2 on an AVX-512 CPU (where AVX-512 may clock lower).
enum Kernel { kBuiltin = 0, kOpenBlas = 1, kBuiltinAvx2 = 2 };

bool Check(napi_env env, napi_status status, const char* what) {
  if (status == napi_ok) return true;
  napi_throw_error(env, nullptr, what);
  return false;
}

bool Float32Data(napi_env env, napi_value value, float** data, size_t* length, const char* name) {
  bool is_typed = false;
  napi_is_typedarray(env, value, &is_typed);
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
napi_value Gemm(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  if (!Check(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr), "gemm: bad arguments")) return nullptr;
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
  if ((kernel == kOpenBlas && !openblas.sgemm) || (kernel == kBuiltin && !kBuiltinSupported) ||
      (kernel == kBuiltinAvx2 && !kBuiltinSupported) || kernel < kBuiltin || kernel > kBuiltinAvx2) {
    napi_throw_error(env, nullptr, "gemm: that kernel is not available on this machine");
    return nullptr;
  }
  if (kernel != kOpenBlas) {
    ParallelBuiltinGemm(kernel == kBuiltinAvx2 ? Isa::kAvx2 : kIsa, batch, m, n, k, a, trans_a, b, trans_b, c);
    return nullptr;
  }
  for (int i = 0; i < batch; i++) {
    // cblas does not accept a zero leading dimension even for empty matrices.
    openblas.sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, m, n, k, 1.0f,
                   a + int64_t(i) * m * k, std::max(1, trans_a ? m : k), b + int64_t(i) * k * n,
                   std::max(1, trans_b ? k : n), 0.0f, c + int64_t(i) * m * n, std::max(1, n));
  }
  return nullptr;
}

// adamw(p, g, m, v, pOut, mOut, vOut, [beta1, 1-beta1, beta2, 1-beta2, decay, bc2Sqrt, eps, stepSize, gradScale]):
// per element, in float32 and in this order (the order of @kotune/optim's AdamW ops):
//   g ← g·gradScale;  m ← m·β₁ + g·(1−β₁);  v ← v·β₂ + (g·g)·(1−β₂);  p ← p·decay (1: no decay)
//   p ← p − (m / (√v / bc2Sqrt + ε))·stepSize
napi_value AdamW(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  if (!Check(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr), "adamw: bad arguments")) return nullptr;
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
  const float beta1 = constants[0], one_minus_beta1 = constants[1], beta2 = constants[2], one_minus_beta2 = constants[3];
  const float decay = constants[4], bc2_sqrt = constants[5], eps = constants[6], step_size = constants[7];
  const float grad_scale = constants[8];
  const float *p = arrays[0], *g = arrays[1], *m = arrays[2], *v = arrays[3];
  float *p_out = arrays[4], *m_out = arrays[5], *v_out = arrays[6];
  for (size_t i = 0; i < lengths[0]; i++) {
    const float gi = g[i] * grad_scale;  // x·1 = x exactly, so no case for an unscaled gradient
    const float mi = m[i] * beta1 + gi * one_minus_beta1;
    const float vi = v[i] * beta2 + (gi * gi) * one_minus_beta2;
    const float pi = p[i] * decay;
    const float denom = std::sqrt(vi) / bc2_sqrt + eps;
    p_out[i] = pi - (mi / denom) * step_size;
    m_out[i] = mi;
    v_out[i] = vi;
  }
  return nullptr;
}

// sumOfSquares(x): Σ x² accumulated in double (a float32 sum over millions of elements loses digits).
napi_value SumOfSquares(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr);
  if (argc != 1) {
    napi_throw_type_error(env, nullptr, "sumOfSquares(x) takes 1 argument");
    return nullptr;
  }
  float* x;
  size_t length;
  if (!Float32Data(env, arg, &x, &length, "x")) return nullptr;
  double sums[4] = {0, 0, 0, 0};  // four chains, so the additions overlap
  size_t i = 0;
  for (; i + 4 <= length; i += 4) {
    for (int j = 0; j < 4; j++) sums[j] += double(x[i + j]) * double(x[i + j]);
  }
  for (; i < length; i++) sums[0] += double(x[i]) * double(x[i]);
  napi_value result;
  napi_create_double(env, (sums[0] + sums[1]) + (sums[2] + sums[3]), &result);
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

// GELU on 8 floats at a time with AVX2 and FMA. erf is Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), the
// approximation PyTorch's own vectorised CPU erf uses, and exp is Cephes' expf (≈1 ulp); the CPU without
// AVX2 gets libm's erff/expf instead. Φ(x) = (1 + erf(x/√2))·0.5, φ(x) = e^(−x²/2)/√(2π), and e^(−x²/2) is
// the exponential erf computes anyway.
struct GeluTerms {
  __m256 cdf, pdf;
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

__attribute__((target("avx2,fma"))) void GeluAvx2(const float* x, float* y, size_t n) {
  const float* const in[1] = {x};
  Blocks8(n, in, y, [](const float* const* at, float* out) __attribute__((target("avx2,fma"))) {
    const __m256 xv = _mm256_loadu_ps(at[0]);
    _mm256_storeu_ps(out, _mm256_mul_ps(xv, Gelu8(xv).cdf));
  });
}

__attribute__((target("avx2,fma"))) void GeluGradAvx2(const float* x, const float* dy, float* dx, size_t n) {
  const float* const in[2] = {x, dy};
  Blocks8(n, in, dx, [](const float* const* at, float* out) __attribute__((target("avx2,fma"))) {
    const __m256 xv = _mm256_loadu_ps(at[0]);
    const GeluTerms g = Gelu8(xv);
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_loadu_ps(at[1]), _mm256_fmadd_ps(xv, g.pdf, g.cdf)));
  });
}

// gelu(x, y): y = x·Φ(x), PyTorch's exact (erf) GELU.
napi_value Gelu(napi_env env, napi_callback_info info) {
  static const char* const names[] = {"x", "y"};
  float* a[2];
  size_t n;
  if (!EqualFloat32Arrays(env, info, 2, names, a, &n, "gelu")) return nullptr;
  if (kIsa != Isa::kNone) {
    GeluAvx2(a[0], a[1], n);
    return nullptr;
  }
  for (size_t i = 0; i < n; i++) a[1][i] = a[0][i] * ((1.0f + std::erf(a[0][i] * float(M_SQRT1_2))) * 0.5f);
  return nullptr;
}

// geluGrad(x, dy, dx): dx = dy·(Φ(x) + x·φ(x)) (PyTorch's GeluBackward), Φ recomputed rather than kept
// from the forward: an erf is cheaper here than a saved activation.
napi_value GeluGrad(napi_env env, napi_callback_info info) {
  static const char* const names[] = {"x", "dy", "dx"};
  float* a[3];
  size_t n;
  if (!EqualFloat32Arrays(env, info, 3, names, a, &n, "geluGrad")) return nullptr;
  if (kIsa != Isa::kNone) {
    GeluGradAvx2(a[0], a[1], a[2], n);
    return nullptr;
  }
  const float inv_sqrt_2pi = static_cast<float>(1.0 / std::sqrt(2.0 * M_PI));
  for (size_t i = 0; i < n; i++) {
    const float x = a[0][i];
    const float cdf = (1.0f + std::erf(x * float(M_SQRT1_2))) * 0.5f;
    a[2][i] = a[1][i] * (cdf + x * (std::exp(x * x * -0.5f) * inv_sqrt_2pi));
  }
  return nullptr;
}

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
__attribute__((target("avx2"))) void DropoutAvx2(const float* x, float* y, size_t n, uint32_t seed, uint32_t threshold,
                                                 float scale) {
  DropoutLoop(x, y, n, seed, threshold, scale);
}

napi_value Dropout(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
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
  if (kIsa != Isa::kNone) {
    DropoutAvx2(x, y, n, seed, threshold, static_cast<float>(scale));
  } else {
    DropoutLoop(x, y, n, seed, threshold, static_cast<float>(scale));
  }
  return nullptr;
}

// layerNorm(x, weight, bias, y, mean, rstd, eps): over each row of `width` = weight's length,
// y = (x − mean)·rstd·weight + bias with rstd = 1/√(biased variance + eps), the moments accumulated in
// double; `mean` and `rstd` (one per row) are kept for the backward instead of the normalised rows.
napi_value LayerNorm(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
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
  return nullptr;
}

// layerNormGrad(x, weight, mean, rstd, dy, dx, dweight, dbias): PyTorch's native_layer_norm_backward with
// x̂ = (x − mean)·rstd and g = dy·weight per row: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); dweight = Σ_rows dy·x̂;
// dbias = Σ_rows dy (sums in double).
napi_value LayerNormGrad(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
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
  const float *x = a[0], *w = a[1], *mean = a[2], *rstd = a[3], *dy = a[4];
  float *dx = a[5], *dweight = a[6], *dbias = a[7];
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
  return nullptr;
}

// softmax(scores, mask, probs, width, rowsPerMask, divisor): attention probabilities over rows of `width`,
// p = softmax(scores / divisor + mask) in the order of @kotune/engine's tensor ops, with the mask row of
// row r at mask[(r / rowsPerMask)·width] (an additive [batch, 1, 1, seq] mask under [batch, heads, q, seq]
// scores). exp is Exp8 (Cephes' expf, 0 below −87.34); each row's sum is accumulated in double.
__attribute__((target("avx2,fma"))) void SoftmaxRowsAvx2(const float* scores, const float* mask, float* probs, size_t rows,
                                                         size_t width, size_t rows_per_mask, float divisor) {
  const size_t body = width / 8 * 8;  // 8 floats at a time, then a scalar tail of the same operations
  const __m256 d = _mm256_set1_ps(divisor);
  for (size_t r = 0; r < rows; r++) {
    const float *s = scores + r * width, *m = mask + (r / rows_per_mask) * width;
    float* p = probs + r * width;
    __m256 top8 = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    for (size_t j = 0; j < body; j += 8) {
      const __m256 z = _mm256_add_ps(_mm256_div_ps(_mm256_loadu_ps(s + j), d), _mm256_loadu_ps(m + j));
      _mm256_storeu_ps(p + j, z);
      top8 = _mm256_max_ps(top8, z);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, top8);
    float top = *std::max_element(lanes, lanes + 8);
    for (size_t j = body; j < width; j++) top = std::max(top, p[j] = s[j] / divisor + m[j]);
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
    const float total = static_cast<float>(sum);
    const __m256 total8 = _mm256_set1_ps(total);
    for (size_t j = 0; j < body; j += 8) _mm256_storeu_ps(p + j, _mm256_div_ps(_mm256_loadu_ps(p + j), total8));
    for (size_t j = body; j < width; j++) p[j] /= total;
  }
}

napi_value Softmax(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
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
  if (kIsa != Isa::kNone) {
    SoftmaxRowsAvx2(scores, mask, probs, rows, width, rows_per_mask, static_cast<float>(divisor));
    return nullptr;
  }
  const float d = static_cast<float>(divisor);  // without AVX2: the same steps with libm's expf
  for (size_t r = 0; r < rows; r++) {
    const float *sr = scores + r * width, *m = mask + (r / rows_per_mask) * width;
    float* p = probs + r * width;
    float top = -std::numeric_limits<float>::infinity();
    for (size_t j = 0; j < width; j++) top = std::max(top, p[j] = sr[j] / d + m[j]);
    double sum = 0;
    for (size_t j = 0; j < width; j++) sum += p[j] = std::exp(p[j] - top);
    for (size_t j = 0; j < width; j++) p[j] /= static_cast<float>(sum);
  }
  return nullptr;
}

// softmaxGrad(probs, dy, dscores, width, divisor): dscores = (dy·p − Σ(dy·p)·p) / divisor per row, the sum in
// double (autodiff's Softmax and RealDiv rules, as @kotune/engine's tensor ops do them).
napi_value SoftmaxGrad(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
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
  const float d = static_cast<float>(divisor);
  for (size_t r = 0; r < n / width; r++) {
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
  return nullptr;
}

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

napi_value DotRows(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
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
  napi_is_typedarray(env, argv[3], &is_typed);
  if (napi_get_value_uint32(env, argv[2], &dim) != napi_ok || dim == 0 || !is_typed ||
      napi_get_typedarray_info(env, argv[3], &type, &out_len, &raw, nullptr, nullptr) != napi_ok || type != napi_float64_array) {
    napi_throw_type_error(env, nullptr, "dotRows: dim must be a positive integer and out a Float64Array");
    return nullptr;
  }
  if (q_len % dim != 0 || x_len % dim != 0 || out_len != (q_len / dim) * (x_len / dim)) {
    napi_throw_range_error(env, nullptr, "dotRows: queries and rows must hold whole vectors of dim, out one score per pair");
    return nullptr;
  }
  double* out = static_cast<double*>(raw);
  if (kIsa != Isa::kNone) {
    DotRowsAvx2(q, q_len / dim, x, x_len / dim, dim, out);
  } else {
    DotRowsScalar(q, q_len / dim, x, x_len / dim, dim, out);
  }
  return nullptr;
}

napi_value OpenBlasThreads(napi_env env, napi_callback_info) {
  napi_value result;
  napi_create_int32(env, openblas.get_num_threads ? openblas.get_num_threads() : 0, &result);
  return result;
}

void SetString(napi_env env, napi_value object, const char* key, const std::string& value) {
  napi_value v;
  napi_create_string_utf8(env, value.c_str(), value.size(), &v);
  napi_set_named_property(env, object, key, v);
}

void SetFunction(napi_env env, napi_value object, const char* key, napi_callback fn) {
  napi_value v;
  napi_create_function(env, key, NAPI_AUTO_LENGTH, fn, nullptr, &v);
  napi_set_named_property(env, object, key, v);
}

}  // namespace

NAPI_MODULE_INIT() {
  OpenOpenBlas();
  SetFunction(env, exports, "gemm", Gemm);
  SetFunction(env, exports, "adamw", AdamW);
  SetFunction(env, exports, "sumOfSquares", SumOfSquares);
  SetFunction(env, exports, "gelu", Gelu);
  SetFunction(env, exports, "geluGrad", GeluGrad);
  SetFunction(env, exports, "dropout", Dropout);
  SetFunction(env, exports, "layerNorm", LayerNorm);
  SetFunction(env, exports, "layerNormGrad", LayerNormGrad);
  SetFunction(env, exports, "dotRows", DotRows);
  SetFunction(env, exports, "softmax", Softmax);
  SetFunction(env, exports, "softmaxGrad", SoftmaxGrad);
  SetFunction(env, exports, "openBlasThreads", OpenBlasThreads);
  SetString(env, exports, "openBlasLibrary", openblas.library);
  SetString(env, exports, "openBlasConfig", openblas.config);
  SetString(env, exports, "builtinIsa", kIsa == Isa::kAvx512 ? "avx512" : kIsa == Isa::kAvx2 ? "avx2" : "");
  napi_value builtin;
  napi_get_boolean(env, kBuiltinSupported, &builtin);
  napi_value builtin_threads;
  napi_create_int32(env, kBuiltinThreads, &builtin_threads);
  napi_set_named_property(env, exports, "builtinThreads", builtin_threads);
  napi_set_named_property(env, exports, "builtinSupported", builtin);
  return exports;
}
