import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dropout, gelu, initBackend, layerNorm, scaledMaskedSoftmax, tf } from '../src/index.ts';
import { maxDifference, valueAndGrads } from './support.ts';
import { addonMissing, nativeTest } from '../../native/test/support.ts';

let seed = 1;
function randn(shape: number[], std = 1): tf.Tensor {
  return tf.randomNormal(shape, 0, std, 'float32', seed++);
}

/** max |a − b| over max |b|. */
function relativeError(actual: tf.Tensor, expected: tf.Tensor): number {
  const { worst, scale } = maxDifference(actual, expected);
  return worst / scale;
}

const plainGelu = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));

function plainLayerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  const centered = tf.sub(x, tf.mean(x, -1, true));
  const variance = tf.mean(tf.square(centered), -1, true);
  return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), weight), bias);
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`${backend}, native off: gelu equals the plain erf formula bit for bit, and its gradient autodiff's`, async () => {
    await initBackend({ backend, native: 'off', log: null });
    tf.tidy(() => {
      const [[y, dx], [yPlain, dxPlain]] = geluCase();
      assert.equal(Array.from(y!.dataSync()), Array.from(yPlain!.dataSync()));
      // Two float32 routes to the same derivative (PyTorch's formula against the chain rule): a few ulps.
      assert.ok(relativeError(dx!, dxPlain!) <= 1e-6, `d/dx: ${relativeError(dx!, dxPlain!)}`);
    });
  });

  nativeTest(`${backend}, native builtin: gelu and its gradient equal the plain formula's to float32 rounding`, async () => {
    await initBackend({ backend, native: 'builtin', log: null });
    tf.tidy(() => {
      const [[y, dx], [yPlain, dxPlain]] = geluCase();
      // The kernel's erf approximation (|error| ≤ 1.5e-7, as PyTorch's CPU erf) against the backend's erf: a few
      // ulps of the largest value; a wrong formula is off by O(1).
      assert.ok(relativeError(y!, yPlain!) <= 1e-6, `y: ${relativeError(y!, yPlain!)}`);
      assert.ok(relativeError(dx!, dxPlain!) <= 1e-6, `d/dx: ${relativeError(dx!, dxPlain!)}`);
    });
  });

  test(`${backend}, native off: layerNorm equals the plain formula bit for bit, and its gradients autodiff's`, async () => {
    await initBackend({ backend, native: 'off', log: null });
    tf.tidy(() => {
      const { ours, plain } = layerNormCase();
      assert.equal(Array.from(ours[0]!.dataSync()), Array.from(plain[0]!.dataSync()));
      assertLayerNormGradients(ours, plain);
    });
  });

  nativeTest(`${backend}, native builtin: layerNorm and its gradients equal the plain formula's to float32 rounding`, async () => {
    await initBackend({ backend, native: 'builtin', log: null });
    tf.tidy(() => {
      const { ours, plain } = layerNormCase();
      // Moments accumulated in double against the backend's float32 means: a few ulps of the output.
      assert.ok(relativeError(ours[0]!, plain[0]!) <= 1e-6, `y: ${relativeError(ours[0]!, plain[0]!)}`);
      assertLayerNormGradients(ours, plain);
    });
  });
}

/** Value and gradient of `gelu`, then of the plain formula, on one input of std 3. */
function geluCase(): [tf.Tensor[], tf.Tensor[]] {
  const x = randn([3, 7, 40], 3);
  const r = randn([3, 7, 40]);
  return [valueAndGrads((x) => gelu(x!), [x], r), valueAndGrads((x) => plainGelu(x!), [x], r)];
}

/** Value and gradients of `layerNorm` and of the plain formula on one input with an offset mean, as residual streams have. */
function layerNormCase(): { ours: tf.Tensor[]; plain: tf.Tensor[] } {
  const x = tf.add(randn([4, 9, 48], 2), 5);
  const weight = randn([48]);
  const bias = randn([48]);
  const r = randn([4, 9, 48]);
  const eps = 1e-5;
  return {
    ours: valueAndGrads((x, w, b) => layerNorm(x!, w as tf.Tensor1D, b as tf.Tensor1D, eps), [x, weight, bias], r),
    plain: valueAndGrads((x, w, b) => plainLayerNorm(x!, w!, b!, eps), [x, weight, bias], r),
  };
}

/** Gradients: reordered float32 sums over the 48 features or the 36 rows; a wrong term is off by O(1). */
function assertLayerNormGradients(ours: tf.Tensor[], plain: tf.Tensor[]): void {
  ['d/dx', 'd/dweight', 'd/dbias'].forEach((what, i) => {
    const error = relativeError(ours[i + 1]!, plain[i + 1]!);
    assert.ok(error <= 1e-5, `${what}: ${error} on ${tf.getBackend()}`);
  });
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`${backend}, native off: scaledMaskedSoftmax equals softmax(scores / d + mask) bit for bit, value and gradient`, async () => {
    await initBackend({ backend, native: 'off', log: null });
    tf.tidy(() => {
      const scores = randn([6, 5, 7], 4);
      // An attention mask [batch, 1, 1, seq] → here [1, 1, 7]: two padded keys get finfo(float32).min.
      const mask = tf.tensor3d([[[0, 0, 0, 0, 0, -3.4028234663852886e38, -3.4028234663852886e38]]]);
      const r = randn([6, 5, 7]);
      const ours = valueAndGrads((s) => scaledMaskedSoftmax(s!, Math.sqrt(32), mask), [scores], r);
      const plain = valueAndGrads((s) => tf.softmax(tf.add(tf.div(s!, Math.sqrt(32)), mask)), [scores], r);
      ours.forEach((t, i) => assert.equal(Array.from(t.dataSync()), Array.from(plain[i]!.dataSync()), i === 0 ? 'value' : 'd/dscores'));
    });
  });

  nativeTest(
    `${backend}, native builtin: attention softmax [batch, heads, q, seq] with a [batch, 1, 1, seq] mask equals the plain ops to float32 rounding`,
    async () => {
      await initBackend({ backend, native: 'builtin', log: null });
      tf.tidy(() => {
        const scores = randn([2, 3, 5, 13], 4); // 13 keys: one block of 8 and a padded tail
        const min = -3.4028234663852886e38;
        const mask = tf.tensor4d([[[[...Array(13).fill(0)]]], [[[...Array(10).fill(0), min, min, min]]]]);
        const r = randn([2, 3, 5, 13]);
        const ours = valueAndGrads((s) => scaledMaskedSoftmax(s!, Math.sqrt(32), mask), [scores], r);
        const plain = valueAndGrads((s) => tf.softmax(tf.add(tf.div(s!, Math.sqrt(32)), mask)), [scores], r);
        // Cephes' expf and a double row sum against the backend's: a few ulps of probabilities ≤ 1.
        ['value', 'd/dscores'].forEach((what, i) =>
          assert.ok(relativeError(ours[i]!, plain[i]!) <= 1e-6, `${what}: ${relativeError(ours[i]!, plain[i]!)}`),
        );
        const probs = ours[0]!.arraySync() as number[][][][];
        assert.ok(
          probs[1]!.flat().every((row) => row.slice(10).every((p) => p === 0)),
          'padded keys weigh exactly 0',
        );
      });
    },
  );
}

test('dropout: same seed → the same mask on wasm and cpu, with and without the native kernel, kept entries scaled by 1/(1 − rate), gradient through the mask', async () => {
  const run = async (backend: 'wasm' | 'cpu', seed: number, native = 'off') => {
    await initBackend({ backend, native, log: null });
    return tf.tidy(() => {
      const x = tf.add(tf.abs(randn([50, 400])), 0.5); // no zeros: a zero output means a dropped entry
      const r = randn([50, 400]);
      const [y, dx] = valueAndGrads((x) => dropout(x!, 0.25, seed), [x], r);
      return { x: x.dataSync(), r: r.dataSync(), y: y!.dataSync(), dx: dx!.dataSync() };
    });
  };
  seed = 100;
  const wasm = await run('wasm', 7);
  const builtin =
    addonMissing === undefined
      ? ([
          ['wasm', 'builtin'],
          ['cpu', 'builtin'],
        ] as const)
      : [];
  for (const [backend, native] of [['cpu', 'off'] as const, ...builtin]) {
    seed = 100;
    const other = await run(backend, 7, native);
    assert.equal(Array.from(other.y), Array.from(wasm.y), `${backend}, native ${native}: y`);
    assert.equal(Array.from(other.dx), Array.from(wasm.dx), `${backend}, native ${native}: dx`);
  }
  const scale = Math.fround(1 / 0.75);
  let dropped = 0;
  wasm.y.forEach((y, i) => {
    const kept = y !== 0;
    if (!kept) dropped += 1;
    assert.is(y, kept ? Math.fround(wasm.x[i]! * scale) : 0);
    assert.is(wasm.dx[i], kept ? Math.fround(wasm.r[i]! * scale) : 0);
  });
  // 20 000 draws at rate 0.25: the dropped fraction is 0.25 ± 0.003 (1σ); allow 5σ.
  assert.ok(Math.abs(dropped / wasm.y.length - 0.25) < 0.015, `dropped fraction ${dropped / wasm.y.length}`);
  const other = await run('wasm', 8);
  assert.not.equal(Array.from(other.y), Array.from(wasm.y), 'another seed, another mask');
  assert.throws(() => dropout(tf.ones([2]), 1, 0), /rate must be in \[0, 1\)/);
});

test('layerNorm rejects a weight of the wrong width', async () => {
  await initBackend({ backend: 'cpu', log: null });
  tf.tidy(() => {
    assert.throws(
      () => layerNorm(randn([2, 5]), randn([4]) as tf.Tensor1D, randn([5]) as tf.Tensor1D, 1e-5),
      /weight \[4\] and bias \[5\] do not match input \[2,5\]/,
    );
  });
});

test.run();
