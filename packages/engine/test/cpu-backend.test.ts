/**
 * kotune-cpu's pure-JavaScript replacements of tfjs-backend-cpu kernels, against tfjs's own `cpu` backend (which
 * keeps its kernels) on the same inputs: GatherV2 along axis 0 as row copies, and Add / Mul / RealDiv with the
 * smaller operand's shape the end of the larger's as one tiling loop. Each result must be the same bits (copies, and
 * one float32 operation an element), and the cases these do not take (another axis, an index out of range, b the
 * larger operand, a middle broadcast) must still give tfjs's results and errors.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initBackend, tf } from '../src/index.ts';

function values(seed: number, n: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 10 ** ((s % 7) - 3);
  });
}

/** Every case's values (or its error message), computed on the backend tf.js runs now. */
function cases(): (number[] | string)[] {
  const x = tf.tensor(values(1, 50 * 3 * 4), [50, 3, 4]);
  const table = tf.tensor(values(2, 40 * 16), [40, 16]);
  const ids = tf.tensor2d(
    [
      [3, 0, 39, 3],
      [7, 7, 1, 20],
    ],
    undefined,
    'int32',
  );
  const run = (f: () => tf.Tensor): number[] | string => {
    try {
      return Array.from(tf.tidy(f).dataSync());
    } catch (err) {
      return String(err);
    }
  };
  const [a, row, flat] = [tf.tensor(values(3, 6 * 5 * 16), [6, 5, 16]), tf.tensor(values(4, 16), [1, 16]), tf.tensor(values(5, 16))];
  const out = [
    run(() => tf.gather(table, ids)),
    run(() => tf.gather(x, tf.tensor1d([49, 0, 2], 'int32'))),
    run(() =>
      tf.gather(
        tf.tensor2d(
          [
            [1, 2],
            [3, 4],
            [5, 6],
          ],
          undefined,
          'int32',
        ),
        tf.tensor1d([2, 0], 'int32'),
      ),
    ),
    run(() =>
      tf.gather(
        tf.tensor2d(
          [
            [1, 0],
            [0, 1],
          ],
          undefined,
          'bool',
        ),
        tf.tensor1d([1, 1, 0], 'int32'),
      ),
    ),
    run(() => tf.gather(x, tf.tensor1d([2, 0], 'int32'), 1)),
    run(() => tf.gather(table, tf.tensor1d([40], 'int32'))),
    run(() => tf.add(a, row)),
    run(() => tf.add(a, flat)),
    run(() => tf.mul(a, row)),
    run(() => tf.div(a, row)),
    run(() => tf.add(a, tf.tensor(values(6, 5 * 16), [5, 16]))),
    run(() => tf.div(row, a)),
    run(() => tf.add(a, tf.tensor(values(7, 6 * 16), [6, 1, 16]))),
  ];
  tf.dispose([x, table, ids, a, row, flat]);
  return out;
}

test("kotune-cpu's row gather and trailing broadcast give tfjs cpu's bits, and its errors", async () => {
  await initBackend({ backend: 'cpu', native: 'off', log: null });
  const ours = cases();
  await tf.setBackend('cpu'); // tfjs's own kernels
  const theirs = cases();
  await initBackend({ backend: 'cpu', native: 'off', log: null });
  assert.match(String(ours[5]), /GatherV2: the index value 40 is not in \[0, 39\]/);
  ours.forEach((got, i) => {
    const expected = theirs[i]!;
    if (typeof expected === 'string') return assert.is(got, expected, `case ${i}: the same error`);
    assert.ok(Array.isArray(got) && got.length === expected.length, `case ${i}: length`);
    (got as number[]).forEach((v, j) => {
      if (!Object.is(v, expected[j])) assert.unreachable(`case ${i} element ${j}: ${v} vs ${expected[j]}`);
    });
  });
});

test.run();
