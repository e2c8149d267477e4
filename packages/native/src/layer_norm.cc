// LayerNorm and its gradient over rows, moments in double; the backward recomputes the normalised rows from x
// and two numbers per row (mean, rstd) instead of keeping them.
#include <cmath>
#include <vector>

#include "kernels.h"

namespace kotune {

// Over each row of `width` = weight's length, y = (x − mean)·rstd·weight + bias with rstd = 1/√(biased variance
// + eps), the moments accumulated in double; `mean` and `rstd` (one per row) are kept for the backward instead of
// the normalised rows.
void LayerNormRows(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, size_t rows,
                   size_t width, double eps) {
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
}

// PyTorch's native_layer_norm_backward with x̂ = (x − mean)·rstd and g = dy·weight per row:
// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); dweight = Σ_rows dy·x̂; dbias = Σ_rows dy (sums in double).
void LayerNormGradRows(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, float* dx,
                       float* dweight, float* dbias, size_t rows, size_t width) {
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
}

}  // namespace kotune
