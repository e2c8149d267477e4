import * as assert from 'uvu/assert';
import { loadNative, type NativeKernels } from '../src/index.ts';
import { addonMissing, nativeTest as test } from './support.ts';

/**
 * GELU and its gradient against float64 references. erf is approximated (Abramowitz & Stegun 7.1.26,
 * |error| ≤ 1.5e-7, as PyTorch's vectorised CPU erf), so Φ(x) = (1 + erf(x/√2))/2 is within 7.5e-8 and
 * y = x·Φ(x) within 7.5e-8·|x|, plus float32 rounding of the result (|y|·2⁻²³ or so). The checks allow
 * 1.5e-7·|x| + 2·2⁻²³·|y| (measured: up to 0.61 of that, 0.77 for the gradient's bound below); a wrong
 * constant or sign is off by 1e-3 or more.
 */
const kernels = addonMissing !== undefined ? (undefined as never) : (loadNative('builtin') as { kernels: NativeKernels }).kernels;

/** erf in float64: 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)), all terms positive (no cancellation). */
function erf64(x: number): number {
  const ax = Math.abs(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 400 && term > sum * 1e-17; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * Math.min(1, (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum);
}

const cdf64 = (x: number) => 0.5 * (1 + erf64(x / Math.SQRT2));
const pdf64 = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);

/** Every 1/64 in [−10, 10] (exact in float32) and 13 of them more, so the padded last block runs too. */
const xs = Float32Array.from({ length: 20 * 64 + 1 + 13 }, (_, i) => (i <= 20 * 64 ? -10 + i / 64 : (i - 20 * 64) * 0.37));

test('gelu: x·Φ(x) to the erf approximation plus float32 rounding', () => {
  const y = new Float32Array(xs.length).fill(Number.NaN);
  kernels.gelu(xs, y);
  let worst = 0;
  xs.forEach((x, i) => {
    const expected = x * cdf64(x);
    const tolerance = 1.5e-7 * Math.abs(x) + 2 * 2 ** -23 * Math.abs(expected);
    worst = Math.max(worst, Math.abs(y[i]! - expected) / (tolerance || 1));
    assert.ok(Math.abs(y[i]! - expected) <= tolerance, `gelu(${x}) = ${y[i]}, expected ${expected}`);
  });
  console.log(`gelu: worst error ${worst.toFixed(2)} of the tolerance`);
});

test('geluGrad: dy·(Φ(x) + x·φ(x)) likewise', () => {
  const dy = Float32Array.from(xs, (_, i) => (i % 7) - 3);
  const dx = new Float32Array(xs.length).fill(Number.NaN);
  kernels.geluGrad(xs, dy, dx);
  let worst = 0;
  xs.forEach((x, i) => {
    const expected = dy[i]! * (cdf64(x) + x * pdf64(x));
    // Φ within 7.5e-8, e^(−x²/2) within a few ulps (Cephes' expf), then float32 rounding.
    const tolerance = Math.abs(dy[i]!) * (1e-7 + 4 * 2 ** -23 * Math.abs(x * pdf64(x))) + 2 * 2 ** -23 * Math.abs(expected);
    worst = Math.max(worst, Math.abs(dx[i]! - expected) / (tolerance || 1));
    assert.ok(Math.abs(dx[i]! - expected) <= tolerance, `geluGrad(${x}, ${dy[i]}) = ${dx[i]}, expected ${expected}`);
  });
  console.log(`geluGrad: worst error ${worst.toFixed(2)} of the tolerance`);
});

test('softmax: masked keys weigh exactly 0, and a NaN score makes its whole row NaN (as the tensor ops do)', () => {
  // Width 19: two 8-float blocks and a tail of 3; the NaN sits in the first block, then in the tail.
  const width = 19;
  const mask = Float32Array.from({ length: width }, (_, j) => (j % 4 === 1 ? -3.4e38 : 0));
  for (const at of [2, 17]) {
    const scores = Float32Array.from({ length: 2 * width }, (_, i) => (i % 7) - 3);
    scores[width + at] = Number.NaN;
    const probs = new Float32Array(2 * width);
    kernels.softmax(scores, mask, probs, width, 2, 8);
    for (let j = 0; j < width; j++) {
      if (j % 4 === 1) assert.is(probs[j], 0, `masked key ${j}`);
      else assert.ok(probs[j]! > 0, `kept key ${j}`);
      assert.ok(Number.isNaN(probs[width + j]), `row with a NaN at ${at}: key ${j} is ${probs[width + j]}`);
    }
  }
});

/**
 * LayerNorm against float64 at widths around the 16-float vectors (1, 7, 16, 17, 37, 384: body only, tail only,
 * both), rows with an offset mean as residual streams have. The moments are double sums cast to float32 (mean
 * and rstd each within a float32 rounding: 2⁻²⁴ relative, doubled for the sums' order), then y = ((x − m)·s)·w + b
 * in float32: four roundings of terms no larger than (|x − μ| + |μ|)·rstd·|w| + |b|; the check allows 8 of them.
 */
test('layerNorm: y, mean and rstd equal float64 LayerNorm to float32 rounding at every width', () => {
  let seed = 7;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 31 - 1;
  for (const width of [1, 7, 16, 17, 37, 384]) {
    const rows = 3;
    const x = Float32Array.from({ length: rows * width }, () => 5 + 2 * next());
    const w = Float32Array.from({ length: width }, () => 1 + 0.5 * next());
    const b = Float32Array.from({ length: width }, () => next());
    const y = new Float32Array(rows * width).fill(Number.NaN);
    const mean = new Float32Array(rows);
    const rstd = new Float32Array(rows);
    const eps = 1e-5;
    kernels.layerNorm(x, w, b, y, mean, rstd, eps);
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * width, (r + 1) * width));
      const mu = row.reduce((s, v) => s + v, 0) / width;
      const rs = 1 / Math.sqrt(row.reduce((s, v) => s + (v - mu) ** 2, 0) / width + eps);
      assert.ok(Math.abs(mean[r]! - mu) <= 2 * 2 ** -24 * Math.abs(mu), `width ${width} row ${r}: mean ${mean[r]}, expected ${mu}`);
      assert.ok(Math.abs(rstd[r]! - rs) <= 2 * 2 ** -24 * rs, `width ${width} row ${r}: rstd ${rstd[r]}, expected ${rs}`);
      row.forEach((v, j) => {
        const expected = (v - mu) * rs * w[j]! + b[j]!;
        const tolerance = 8 * 2 ** -24 * ((Math.abs(v - mu) + Math.abs(mu)) * rs * Math.abs(w[j]!) + Math.abs(b[j]!));
        assert.ok(
          Math.abs(y[r * width + j]! - expected) <= tolerance,
          `width ${width} row ${r}, ${j}: ${y[r * width + j]}, expected ${expected}`,
        );
      });
    }
  }
});

test('arrays of different lengths or types are refused', () => {
  assert.throws(() => kernels.gelu(new Float32Array(3), new Float32Array(4)), /the same length/);
  assert.throws(
    () => kernels.geluGrad(new Float32Array(3), new Float32Array(3), [] as unknown as Float32Array),
    /dx must be a Float32Array/,
  );
});

test.run();
