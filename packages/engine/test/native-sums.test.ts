/**
 * The native gradient-sized sums: the cpu backend's Add, Mul and RealDiv on float32 tensors of 65,536 elements or
 * more (the same shape, or one side a single value), and nn.Embedding's gradient (`nativeEmbeddingGrad`), against
 * the backend's own kernels and tf.scatterND (native kernels off). Both do one float32 operation an element in the
 * same order, so the bits must be equal (no tolerance). Also: under the size threshold, other dtypes and
 * broadcasting shapes keep the backend's kernel (equal results either way). And `addInto`, the running sums'
 * addition in place, against tf.add.
 */
import * as assert from 'uvu/assert';
import { addInto, initBackend, nativeEmbeddingGrad, tf } from '../src/index.ts';
import { nativeTest } from '../../native/test/support.ts';

const N = 7 * 14200; // over the threshold and several of the kernel's chunks, not a whole number of them

function values(seed: number, n: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 10 ** ((s % 7) - 3);
  });
}

/** A float32 [N / 7, 7] tensor made by casting int32 values `f(i)`: the cpu backend keeps their Int32Array. */
function castFromInt32(f: (i: number) => number): tf.Tensor {
  return tf.cast(
    tf.tensor(
      Int32Array.from({ length: N }, (_, i) => f(i)),
      [N / 7, 7],
      'int32',
    ),
    'float32',
  );
}

/** Each case's result, computed with the native kernels as `native` says. */
async function sums(native: 'off' | 'builtin'): Promise<Float32Array[]> {
  await initBackend({ backend: 'cpu', native, log: null });
  return tf.tidy(() => {
    const a = tf.tensor(values(1, N), [N / 7, 7]);
    const b = tf.tensor(values(2, N), [N / 7, 7]);
    const s = tf.scalar(0.37);
    const small = tf.tensor(values(3, 1000));
    const cases = [
      tf.add(a, b),
      tf.mul(a, b),
      tf.div(a, b),
      tf.add(a, s),
      tf.add(s, a),
      tf.mul(a, s),
      tf.mul(s, a),
      tf.div(a, s),
      tf.div(s, a),
      tf.add(a, tf.tensor([[0.25]])),
      tf.add(a, tf.tensor(values(4, 7), [1, 7])),
      tf.add(small, small),
      tf.div(a, 4),
      // float32 tensors the cpu backend keeps as Int32Arrays (a Cast from int32 retags the int32 buffer): what
      // tf.norm's gradient multiplies by (its exponent 2), and a cast mask the size of a gradient.
      tf.mul(a, tf.cast(tf.scalar(2, 'int32'), 'float32')),
      tf.mul(
        castFromInt32((i) => i % 3),
        b,
      ),
      tf.add(
        castFromInt32((i) => i - 5000),
        s,
      ),
    ];
    return cases.map((t) => t.dataSync() as Float32Array);
  });
}

nativeTest(
  "cpu: native Add, Mul and RealDiv give the backend kernels' bits (same shape, scalar either side, broadcast, small, int32 data cast to float32)",
  async () => {
    const reference = await sums('off');
    const native = await sums('builtin');
    reference.forEach((expected, i) => {
      const got = native[i]!;
      assert.is(got.length, expected.length, `case ${i} length`);
      for (let j = 0; j < expected.length; j++)
        if (!Object.is(got[j], expected[j])) assert.unreachable(`case ${i} element ${j}: ${got[j]} vs ${expected[j]}`);
    });
  },
);

nativeTest("embedding gradient: tf.scatterND's sums (repeated ids, padding skipped), bit for bit, on cpu and wasm", async () => {
  const rows = 5000;
  const width = 300;
  const ids = Int32Array.from({ length: 2 * 37 }, (_, i) => ((i * 613) % 97) + (i % 5 === 0 ? 1 : 40)); // repeats, and pads (1)
  const dyValues = values(5, ids.length * width);
  for (const backend of ['cpu', 'wasm'] as const) {
    await initBackend({ backend, native: 'off', log: null });
    const expected = tf.tidy(() => {
      const flat = tf.tensor2d(ids, [ids.length, 1], 'int32');
      const keep = tf.cast(tf.notEqual(flat, 1), 'float32');
      return tf.scatterND(flat, tf.mul(tf.tensor2d(dyValues, [ids.length, width]), keep), [rows, width]).dataSync() as Float32Array;
    });
    await initBackend({ backend, native: 'builtin', log: null });
    const before = tf.memory().numTensors;
    const got = tf.tidy(
      () =>
        nativeEmbeddingGrad(tf.tensor2d(ids, [2, 37], 'int32'), tf.tensor3d(dyValues, [2, 37, width]), rows, 1)!.dataSync() as Float32Array,
    );
    assert.is(tf.memory().numTensors, before, 'tensors leaked');
    assert.is(got.length, expected.length);
    for (let j = 0; j < expected.length; j++)
      if (!Object.is(got[j], expected[j])) assert.unreachable(`${backend} element ${j}: ${got[j]} vs ${expected[j]}`);
  }
});

nativeTest("addInto: tf.add's bits, in place when the sum's data is its own, else a new tensor (a clone keeps its values)", async () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    for (const native of ['off', 'builtin'] as const) {
      await initBackend({ backend, native, log: null });
      const before = tf.memory().numTensors;
      const addend = tf.tensor(values(2, N), [N / 7, 7]);
      const expected = tf.tidy(() => tf.add(tf.tensor(values(1, N), [N / 7, 7]), addend).dataSync() as Float32Array);
      const sole = tf.tensor(values(1, N), [N / 7, 7]);
      const soleId = sole.dataId;
      const soleSum = addInto(sole, addend);
      assert.is(soleSum === sole && soleSum.dataId === soleId, native === 'builtin', `${backend}, native ${native}: in place`);
      const shared = tf.tensor(values(1, N), [N / 7, 7]);
      const clone = shared.clone();
      const sharedSum = addInto(shared, addend);
      assert.ok(sharedSum !== shared && shared.isDisposed, `${backend}, native ${native}: a shared sum gets a new tensor`);
      assert.equal(Array.from(clone.dataSync()), Array.from(values(1, N)), `${backend}, native ${native}: the clone is untouched`);
      for (const [what, sum] of [
        ['sole', soleSum],
        ['shared', sharedSum],
      ] as const) {
        const got = sum.dataSync();
        for (let j = 0; j < N; j++)
          if (!Object.is(got[j], expected[j]))
            assert.unreachable(`${backend}, native ${native}, ${what}: element ${j}: ${got[j]} vs ${expected[j]}`);
      }
      tf.dispose([addend, soleSum, sharedSum, clone]);
      assert.is(tf.memory().numTensors, before, `${backend}, native ${native}: tensors leaked`);
    }
  }
});

nativeTest.run();
