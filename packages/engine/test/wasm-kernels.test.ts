import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initBackend, tf } from '../src/index.ts';
import { KOTUNE_WASM } from '../src/wasm-kernels.ts';

test('wasm: clone shares the data instead of copying it, and the data lives until the last holder is disposed', async () => {
  await initBackend({ backend: 'wasm', log: null });
  const before = tf.memory().numDataBuffers;
  const x = tf.tensor1d([1, 2, 3]);
  const copy = tf.clone(x);
  assert.is(tf.memory().numDataBuffers - before, 1, 'one buffer for both tensors');
  x.dispose();
  assert.equal(Array.from(copy.dataSync()), [1, 2, 3]);
  copy.dispose();
  assert.is(tf.memory().numDataBuffers, before);
  const text = tf.tensor1d(['a', 'b'], 'string');
  assert.equal(tf.clone(text).dataSync(), ['a', 'b'], 'strings keep the copying kernel');
});

test('wasm: gather along axis 0 equals the cpu kernel for float and int tables, other axes fall back', async () => {
  const table = Array.from({ length: 7 * 3 * 2 }, (_, i) => i * 0.5 - 3);
  const cases: { shape: number[]; dtype: 'float32' | 'int32'; indices: number[][]; axis: number }[] = [
    {
      shape: [7, 6],
      dtype: 'float32',
      indices: [
        [0, 6, 3],
        [3, 3, 1],
      ],
      axis: 0,
    },
    { shape: [7, 3, 2], dtype: 'float32', indices: [[5], [0]], axis: 0 },
    { shape: [7, 6], dtype: 'int32', indices: [[2, 4]], axis: 0 },
    { shape: [7, 6], dtype: 'float32', indices: [[1, 5]], axis: 1 },
  ];
  const run = async (backend: 'wasm' | 'cpu') => {
    await initBackend({ backend, log: null });
    return cases.map(({ shape, dtype, indices, axis }) =>
      tf.tidy(() => {
        const values = dtype === 'int32' ? table.map((v) => Math.round(v * 2)) : table;
        const y = tf.gather(tf.tensor(values, shape, dtype), tf.tensor2d(indices, undefined, 'int32'), axis);
        return { shape: y.shape, values: Array.from(y.dataSync()) };
      }),
    );
  };
  const expected = await run('cpu');
  assert.equal(await run('wasm'), expected);
  assert.throws(() => tf.tidy(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([3], 'int32'))), /index value 3 is not in \[0, 2\]/);
});

test("the replacements are kotune's only: a tfjs user who selects wasm runs tfjs's own kernels on the same heap", async () => {
  await initBackend({ backend: 'wasm', log: null });
  assert.is(tf.getBackend(), KOTUNE_WASM);
  assert.is(tf.findBackend('wasm'), tf.findBackend(KOTUNE_WASM), 'one backend instance, two names');
  assert.is.not(tf.getKernel('Identity', KOTUNE_WASM)!.kernelFunc, tf.getKernel('Identity', 'wasm')!.kernelFunc);
  const x = tf.tensor1d([1, 2, 3]); // made on kotune's backend, used by tfjs's own
  await tf.setBackend('wasm');
  const before = tf.memory().numDataBuffers;
  const copy = tf.clone(x);
  assert.is(tf.memory().numDataBuffers - before, 1, "tfjs's Identity copies: a buffer of its own");
  assert.equal(
    Array.from(
      tf
        .gather(
          tf.tensor2d([
            [1, 2],
            [3, 4],
          ]),
          [1, 0],
        )
        .dataSync(),
    ),
    [3, 4, 1, 2],
  );
  tf.dispose([x, copy]);
  await initBackend({ backend: 'wasm', log: null });
  assert.is(tf.getBackend(), KOTUNE_WASM);
});

test.run();
