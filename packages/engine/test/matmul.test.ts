import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initBackend, linear, matMul, tf, withWeightCache } from '../src/index.ts';
import { loadNative } from '@kotune/native';
import { maxDifference, valueAndGrads } from './support.ts';
import { nativeTest } from '../../native/test/support.ts';

/**
 * Every product path: the backend's own kernels (`off`), the addon's built-in kernel (which CI builds
 * at install, so it must load), and OpenBLAS where the machine has libopenblas.so.0.
 */
const loaded = loadNative('auto');
const GEMMS = ['off', 'builtin', ...('kernels' in loaded && loaded.kernels.kernel === 'openblas' ? ['openblas'] : [])];
if (!GEMMS.includes('openblas')) console.log('matmul.test: no libopenblas.so.0 here; the OpenBLAS path is not tested');
/** The native products' tests skip, saying why, where the addon cannot run. */
const testWith = (gemm: string) => (gemm === 'off' ? test : nativeTest);

/**
 * Our products sum in a different order than `tf.matMul` (XNNPACK blocks versus the naive loop),
 * so results differ by float32 rounding only: reordering a sum of K terms moves it by at most
 * ~K·ε·Σ|terms| (ε = 2⁻²³ ≈ 1.2e-7). The check allows 2·K·ε of the largest |entry| (measured:
 * below 3% of that), while a wrong transpose, batch entry or gradient term is off by O(1) of it.
 */
function assertClose(actual: tf.Tensor, expected: tf.Tensor, innerSize: number, what: string): void {
  const { worst, scale } = maxDifference(actual, expected, `${what}: shape`);
  const tolerance = 2 * innerSize * 2 ** -23 * scale; // float32 reordering bound, see above
  assert.ok(worst <= tolerance, `${what}: max |diff| ${worst} > ${tolerance} (${tf.getBackend()})`);
}

let seed = 1;
function randn(shape: number[]): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed++);
}

/** Shapes as attention and Linear use them, plus odd sizes and a matrix big enough for the blocked transpose. */
const cases: { name: string; m: number; k: number; n: number; batch: number[] }[] = [
  { name: 'rank 2, odd sizes', m: 5, k: 7, n: 6, batch: [] },
  { name: 'rank 2, blocked transpose', m: 256, k: 96, n: 288, batch: [] },
  { name: 'rank 2, odd rows', m: 257, k: 33, n: 255, batch: [] },
  { name: 'rank 3 (attention [B·heads, S, d])', m: 12, k: 8, n: 12, batch: [6] },
  { name: 'rank 3, odd sizes', m: 5, k: 3, n: 7, batch: [4] },
  { name: 'rank 4 (batch, heads)', m: 6, k: 4, n: 6, batch: [2, 3] },
];

for (const [backend, gemm] of (['wasm', 'cpu'] as const).flatMap((b) => GEMMS.map((g) => [b, g] as const))) {
  for (const { name, m, k, n, batch } of cases) {
    for (const [transposeA, transposeB] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ] as const) {
      testWith(gemm)(
        `${backend}, gemm ${gemm}: matMul ${name}, transposeA=${transposeA} transposeB=${transposeB}: values and gradients equal tf.matMul's`,
        async () => {
          await initBackend({ backend, native: gemm, log: null });
          tf.tidy(() => {
            const a = randn([...batch, ...(transposeA ? [k, m] : [m, k])]);
            const b = randn([...batch, ...(transposeB ? [n, k] : [k, n])]);
            const r = randn([...batch, m, n]);
            const ours = valueAndGrads((x, y) => matMul(x!, y!, transposeA, transposeB), [a, b], r);
            const plain = valueAndGrads((x, y) => tf.matMul(x!, y!, transposeA, transposeB), [a, b], r);
            assertClose(ours[0]!, plain[0]!, k, 'value');
            assertClose(ours[1]!, plain[1]!, n, 'd/da'); // da sums over n
            assertClose(ours[2]!, plain[2]!, m, 'd/db'); // db sums over m
          });
        },
      );
    }
  }

  testWith(gemm)(
    `${backend}, gemm ${gemm}: linear on rank-3 input, with and without bias, equals x·wᵀ + b with its gradients`,
    async () => {
      await initBackend({ backend, native: gemm, log: null });
      tf.tidy(() => {
        const [batch, seq, inF, outF] = [3, 20, 40, 24];
        const x = randn([batch, seq, inF]);
        const w = randn([outF, inF]);
        const bias = randn([outF]);
        const r = randn([batch, seq, outF]);
        const reference = (x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor) => {
          const y = tf.matMul(x.reshape([-1, inF]), w, false, true);
          return (b ? tf.add(y, b) : y).reshape([batch, seq, outF]);
        };
        const ours = valueAndGrads((x, w, b) => linear(x!, w as tf.Tensor2D, b as tf.Tensor1D), [x, w, bias], r);
        const plain = valueAndGrads(reference, [x, w, bias], r);
        assertClose(ours[0]!, plain[0]!, inF, 'value');
        assertClose(ours[1]!, plain[1]!, outF, 'd/dx');
        assertClose(ours[2]!, plain[2]!, batch * seq, 'd/dw');
        assertClose(ours[3]!, plain[3]!, batch * seq, 'd/dbias');
        const oursNoBias = valueAndGrads((x, w) => linear(x!, w as tf.Tensor2D), [x, w], r);
        const plainNoBias = valueAndGrads((x, w) => reference(x!, w!), [x, w], r);
        oursNoBias.forEach((t, i) => assertClose(t, plainNoBias[i]!, i === 2 ? batch * seq : Math.max(inF, outF), `no bias, output ${i}`));
      });
    },
  );
}

nativeTest(
  "native products: the gradient is tf.js's registry entry for the kernel: no customGrad wrapper, and only the gradients asked for are computed",
  async () => {
    await initBackend({ backend: 'wasm', native: 'builtin', log: null });
    assert.ok(tf.getGradient('KotuneNativeMatMul'), 'registered');
    const { kernels } = await tf.profile(() => tf.grad((a: tf.Tensor) => tf.sum(matMul(a, tf.ones([3, 2]))))(tf.ones([2, 3])));
    const names = kernels.map((k) => k.name);
    assert.not.ok(names.includes('forward'), `a customGrad wrapper ran: ${names.join(' ')}`);
    // The forward product and d/da; d/db (a constant's) is never made.
    assert.is(names.filter((n) => n === 'KotuneNativeMatMul').length, 2, names.join(' '));
  },
);

test('wasm: linear and matMul reject shapes that do not multiply, and broadcast batches fall back to tf.matMul', async () => {
  await initBackend({ backend: 'wasm', log: null });
  tf.tidy(() => {
    assert.throws(() => linear(randn([2, 5]), randn([3, 4]) as tf.Tensor2D), /weight \[3,4\] does not match input \[2,5\]/);
    assert.throws(
      () => linear(randn([2, 4]), randn([3, 4]) as tf.Tensor2D, randn([4]) as tf.Tensor1D),
      /bias \[4\] does not match weight \[3,4\]/,
    );
    assert.throws(() => matMul(randn([2, 3, 4]), randn([2, 5, 6])), /inner shapes/);
    const a = randn([2, 3, 4]);
    const b = randn([4, 5]);
    assertClose(matMul(a, b), tf.matMul(a, b), 4, 'broadcast');
  });
});

for (const gemm of GEMMS)
  testWith(gemm)(`wasm, gemm ${gemm}: repeated forward + backward leaves no tensor and no wasm memory behind`, async () => {
    await initBackend({ backend: 'wasm', native: gemm, log: null });
    const x = tf.variable(randn([4, 32, 48]));
    const w = tf.variable(randn([40, 48]));
    const bias = tf.variable(randn([40]));
    const q = randn([8, 32, 16]);
    const k = randn([8, 32, 16]);
    const step = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => {
          const h = linear(x, w as tf.Tensor2D, bias as tf.Tensor1D);
          const scores = matMul(q, k, false, true);
          return tf.add(tf.sum(h), tf.sum(matMul(scores, q)));
        });
        return tf.stack([value, ...Object.values(grads).map((g) => tf.sum(g))]).dataSync();
      });
    step();
    const before = tf.memory();
    const dataIdsBefore = tf.engine().backend.numDataIds();
    for (let i = 0; i < 5; i++) step();
    const after = tf.memory();
    assert.is(after.numTensors, before.numTensors, 'numTensors');
    assert.is(after.numBytes, before.numBytes, 'numBytes');
    assert.is(tf.engine().backend.numDataIds(), dataIdsBefore, 'wasm buffers');
    tf.dispose([x, w, bias, q, k]);
  });

// The weight cache holds copies for the XNNPACK path; the native GEMM needs none (`native: 'off'`).
test('wasm: withWeightCache reuses one transposed copy per weight until its data changes, then frees them', async () => {
  await initBackend({ backend: 'wasm', native: 'off', log: null });
  const x = randn([2, 9, 16]);
  const w = tf.variable(randn([12, 16]));
  const bias = randn([12]);
  const before = tf.memory().numTensors;
  const run = () => tf.tidy(() => linear(x, w as tf.Tensor2D, bias as tf.Tensor1D).dataSync());
  const reference = () => tf.tidy(() => tf.add(tf.matMul(x.reshape([-1, 16]), w, false, true), bias).dataSync());
  const close = (a: Float32Array | Int32Array | Uint8Array, b: Float32Array | Int32Array | Uint8Array, what: string) =>
    assert.ok(
      a.every((v, i) => Math.abs(v - b[i]!) <= 1e-4),
      what,
    ); // float32 sums of 16 products of N(0,1) entries (|y| ≲ 20)

  withWeightCache(() => {
    close(run(), reference(), 'first call');
    assert.is(tf.memory().numTensors, before + 1, 'one cached copy of w');
    close(run(), reference(), 'second call');
    assert.is(tf.memory().numTensors, before + 1, 'the copy is reused, not recomputed');
    const negated = tf.neg(w);
    w.assign(negated);
    negated.dispose();
    close(run(), reference(), 'after assign: the new weights');
    assert.is(tf.memory().numTensors, before + 1, 'the stale copy is disposed');
  });
  assert.is(tf.memory().numTensors, before, 'released when the call returns');

  await withWeightCache(async () => {
    withWeightCache(() => run()); // a nested call ends before the outer one: the cache stays
    await Promise.resolve();
    assert.is(tf.memory().numTensors, before + 1, 'still cached inside the outer call');
  });
  assert.is(tf.memory().numTensors, before, 'released when the promise settles');
  assert.throws(
    () =>
      withWeightCache(() => {
        run();
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.is(tf.memory().numTensors, before, 'released when the call throws');
  tf.dispose([x, w, bias]);
});

test('wasm: under withWeightCache, micro-batch gradients reuse the cached copies and follow weight updates', async () => {
  await initBackend({ backend: 'wasm', native: 'off', log: null });
  const x = randn([24, 16]);
  const w = tf.variable(randn([12, 16]));
  const bias = tf.variable(randn([12]));
  const r = randn([24, 12]);
  const dxAndDw = (f: (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor) =>
    tf
      .grads((x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(x, w, b), r)))([x, w, bias])
      .slice(0, 2);
  const ours = () => dxAndDw((x, w, b) => linear(x, w as tf.Tensor2D, b as tf.Tensor1D));
  const plain = () => dxAndDw((x, w, b) => tf.add(tf.matMul(x, w, false, true), b));
  /** dx sums over the 12 outputs, dw over the 24 rows. */
  const assertGradsMatch = (label: string) =>
    tf.tidy(() => {
      const [dx, dw] = ours();
      const [dxRef, dwRef] = plain();
      assertClose(dx!, dxRef!, 12, `${label}: dx`);
      assertClose(dw!, dwRef!, 24, `${label}: dw`);
    });
  const before = tf.memory().numTensors;
  withWeightCache(() => {
    for (const step of [1, 2]) {
      for (const micro of [1, 2]) {
        assertGradsMatch(`step ${step}, micro-batch ${micro}`);
        assert.is(tf.memory().numTensors, before + 2, 'wᵀ and the backward copy of w, once');
      }
      const updated = tf.mul(w, -0.5);
      w.assign(updated);
      updated.dispose();
    }
  });
  assert.is(tf.memory().numTensors, before, 'released when the call returns');
  // A backward that runs after the call has ended (only its forward ran under it) copies w itself.
  tf.tidy(() => {
    const [dx] = dxAndDw((x, w, b) => withWeightCache(() => linear(x, w as tf.Tensor2D, b as tf.Tensor1D)));
    assertClose(dx!, plain()[0]!, 12, 'backward after the call: dx');
  });
  assert.is(tf.memory().numTensors, before, 'nothing left by a backward after the call');
  // Budgets: w is 12·16 floats (768 bytes). Room for wᵀ only, then for nothing: the rest is copied per call.
  for (const [maxBytes, cached] of [
    [1000, 1],
    [700, 0],
  ] as const) {
    withWeightCache(
      () => {
        for (const micro of [1, 2]) {
          assertGradsMatch(`maxBytes ${maxBytes}, micro-batch ${micro}`);
          assert.is(tf.memory().numTensors, before + cached, `maxBytes ${maxBytes}: ${cached} cached copies`);
        }
      },
      { maxBytes },
    );
  }
  assert.is(tf.memory().numTensors, before, 'released after the budgeted calls');
  tf.dispose([x, w, bias, r]);
});

test.run();
