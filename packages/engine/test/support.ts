/** Helpers shared by the engine's tests (not a test file itself: the runner only loads `*.test.ts`). */
import * as assert from 'uvu/assert';
import { tf } from '../src/index.ts';

/**
 * `worst` = max |actual − expected| and `scale` = max |expected| over all entries, after checking the shapes;
 * each test turns them into its own float32 tolerance.
 */
export function maxDifference(actual: tf.Tensor, expected: tf.Tensor, what?: string): { worst: number; scale: number } {
  assert.equal(actual.shape, expected.shape, what);
  const a = actual.dataSync();
  const e = expected.dataSync();
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < e.length; i++) {
    scale = Math.max(scale, Math.abs(e[i]!));
    worst = Math.max(worst, Math.abs(a[i]! - e[i]!));
  }
  return { worst, scale };
}

/** Value and gradients of `sum(f(...inputs) * r)`, so that each output entry gets its own upstream weight. */
export function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], r: tf.Tensor): tf.Tensor[] {
  return [f(...inputs), ...tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), r)))(inputs)];
}
