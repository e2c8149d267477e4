import * as assert from 'uvu/assert';
import { loadNative, type NativeKernels } from '../src/index.ts';
import { addonMissing, nativeTest as test } from './support.ts';

/**
 * The optimizer's kernels over several of their chunks (32,768 elements each, shared out to the threads) and a tail
 * that is not a whole vector: the AdamW update against the same float32 operations in JavaScript (Math.fround after
 * each), bit for bit; the sum of squares against a float64 sum, to 1e-12 relative (both add in double, in
 * different orders).
 */
const kernels = addonMissing !== undefined ? (undefined as never) : (loadNative('builtin') as { kernels: NativeKernels }).kernels;
const N = 3 * 32768 + 4099;

/** Deterministic values of varied size and sign (a 32-bit LCG). */
function values(seed: number, scale: number, positive = false): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: N }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 2 ** 32;
    return positive ? u * u * scale : (u - 0.5) * scale * (1 + 100 * u * u * u);
  });
}

test('adamw: every element gets the float32 operations of @kotune/optim, in order (bits)', () => {
  const [p, g, m, v] = [values(1, 0.1), values(2, 0.01), values(3, 1e-3), values(4, 1e-5, true)];
  const f = Math.fround;
  const c = {
    beta1: f(0.9),
    oneMinusBeta1: f(1 - 0.9),
    beta2: f(0.999),
    oneMinusBeta2: f(1 - 0.999),
    decay: f(1 - 2e-5 * 0.01),
    biasCorrection2Sqrt: f(Math.sqrt(1 - 0.999 ** 3)),
    eps: f(1e-8),
    stepSize: f(2e-5 / (1 - 0.9 ** 3)),
    gradScale: f(0.37),
  };
  const [pOut, mOut, vOut] = [new Float32Array(N), new Float32Array(N), new Float32Array(N)];
  kernels.adamw(p, g, m, v, pOut, mOut, vOut, c);
  for (let i = 0; i < N; i++) {
    const gi = f(g[i]! * c.gradScale);
    const mi = f(f(m[i]! * c.beta1) + f(gi * c.oneMinusBeta1));
    const vi = f(f(v[i]! * c.beta2) + f(f(gi * gi) * c.oneMinusBeta2));
    const pi = f(p[i]! * c.decay);
    const denom = f(f(f(Math.sqrt(vi)) / c.biasCorrection2Sqrt) + c.eps);
    const expected = f(pi - f(f(mi / denom) * c.stepSize));
    if (pOut[i] !== expected || mOut[i] !== mi || vOut[i] !== vi)
      assert.unreachable(`element ${i}: p ${pOut[i]} vs ${expected}, m ${mOut[i]} vs ${mi}, v ${vOut[i]} vs ${vi}`);
  }
});

test('sumOfSquares: the float64 sum over several chunks and a ragged tail, to 1e-12', () => {
  const x = values(5, 3);
  let expected = 0;
  for (const xi of x) expected += xi * xi;
  const got = kernels.sumOfSquares(x);
  assert.ok(Math.abs(got - expected) <= 1e-12 * expected, `${got} vs ${expected}`);
  assert.is(kernels.sumOfSquares(new Float32Array(0)), 0);
  assert.is(kernels.sumOfSquares(Float32Array.of(3)), 9);
});

test.run();
