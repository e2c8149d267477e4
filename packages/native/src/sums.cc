// Sums over whole gradients: the elementwise a + b, a·s and a / s of gradient-sized tensors (tf.js adds a
// parameter's gradients wherever it is used twice, GradCache and accumulation add micro-batches' gradients; the cpu
// backend's own loops take ~17-30 ns an element, 5 s for one sum over XLM-R base), and the embedding's gradient
// (dy's rows added into the rows of their ids in a zeroed [rows, width] matrix: tf.scatterND's sum, without its
// second pass). Each is one pass on all threads over fixed chunks; each element takes one IEEE operation, as in
// JavaScript (a float32 add, multiply or divide computed in double and rounded once is the float32 result), so the
// bits are those of the backend's ops.
#include <algorithm>
#include <cstring>

#include "kernels.h"

namespace kotune {

namespace {

constexpr size_t kChunk = size_t(1) << 15;

template <typename Body>
void ForChunks(size_t n, Body body) {
  const size_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) {
    body(size_t(0), n);
    return;
  }
  RunOnPool(static_cast<int>(chunks), [&](int c) { body(size_t(c) * kChunk, std::min(n, size_t(c + 1) * kChunk)); });
}

}  // namespace

void ElementwiseBinary(ElementwiseOp op, const float* a, const float* b, size_t b_length, float* out, size_t n) {
  if (b_length == 1) {
    const float s = b[0];
    ForChunks(n, [&](size_t begin, size_t end) {
      switch (op) {
        case ElementwiseOp::kAdd: for (size_t i = begin; i < end; i++) out[i] = a[i] + s; break;
        case ElementwiseOp::kMul: for (size_t i = begin; i < end; i++) out[i] = a[i] * s; break;
        case ElementwiseOp::kDiv: for (size_t i = begin; i < end; i++) out[i] = a[i] / s; break;
      }
    });
    return;
  }
  ForChunks(n, [&](size_t begin, size_t end) {
    switch (op) {
      case ElementwiseOp::kAdd: for (size_t i = begin; i < end; i++) out[i] = a[i] + b[i]; break;
      case ElementwiseOp::kMul: for (size_t i = begin; i < end; i++) out[i] = a[i] * b[i]; break;
      case ElementwiseOp::kDiv: for (size_t i = begin; i < end; i++) out[i] = a[i] / b[i]; break;
    }
  });
}

void EmbeddingGrad(const int32_t* ids, size_t count, const float* dy, size_t rows, size_t width, int64_t padding, float* out) {
  std::memset(out, 0, sizeof(float) * rows * width);
  // Split by output columns, so that each thread adds into its own columns, every row's updates in id order.
  const int parts = width >= 256 ? kBuiltinThreads : 1;
  const size_t per = (width + parts - 1) / parts;
  RunOnPool(parts, [&](int t) {
    const size_t lo = std::min(width, t * per), hi = std::min(width, (t + 1) * per);
    for (size_t i = 0; i < count; i++) {
      const int64_t id = ids[i];
      if (id == padding || id < 0 || size_t(id) >= rows) continue;
      float* row = out + size_t(id) * width;
      const float* update = dy + i * width;
      for (size_t j = lo; j < hi; j++) row[j] += update[j];
    }
  });
}

}  // namespace kotune
