/**
 * The model's backward pass against the fixture's float64 gradients, on the simplest loss that reaches every
 * parameter: `BCEWithLogitsLoss` (mean) of the reranker logits (`losses.bce`). Checks the custom embedding
 * gradient too (only the listed word-embedding rows are non-zero; `<pad>` gets none). Tolerances (README):
 * per tensor max|a − b| ≤ 1e-4 · max|b| (the README suggests 1e-3 and says 1e-4 works); analytically zero tensors max|a| ≤ 1e-5 · G.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tf, initBackend } from '@kotune/engine';
import { readSafetensors } from '@kotune/weights';
import { Reranker } from '../src/index.ts';
import { cases, FIXTURE, maxRelativeError, RERANKER_DIR, report } from './fixture.ts';

for (const backend of ['wasm', 'cpu'] as const) {
  test(`${backend}: BCE gradients of every reranker parameter match the reference`, async () => {
    await initBackend({ backend, log: null });
    const bce = cases.losses.bce;
    const inputs = cases.losses.reranker_group_ce.inputs;
    const expected = (await readSafetensors(`${FIXTURE}${bce.grads_file}`)).tensors;
    const reranker = await Reranker.load(RERANKER_DIR, { log: null });
    const variables = reranker.variables();
    const { value, grads } = tf.variableGrads(() => {
      const x = reranker.forward(tf.tensor2d(inputs.input_ids, undefined, 'int32'), tf.tensor2d(inputs.attention_mask, undefined, 'int32'));
      const y = tf.tensor1d(bce.labels);
      // BCEWithLogits, the stable form: max(x, 0) − x·y + log(1 + e^−|x|)
      return tf.mean(tf.add(tf.sub(tf.relu(x), tf.mul(x, y)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))))) as tf.Scalar;
    }, [...variables.values()]);
    assert.ok(Math.abs(value.dataSync()[0]! - bce.loss) <= 1e-5 * bce.loss); // loss: relative 1e-5 (README)
    const scale = Math.max(...[...expected.values()].map((t) => Math.max(...Array.from(t.data as Float64Array, Math.abs))));
    let worst = 0;
    for (const [name, variable] of variables) {
      const grad = grads[variable.name]!.dataSync() as Float32Array;
      if (bce.analytically_zero_grads.includes(name)) {
        assert.ok(Math.max(...Array.from(grad, Math.abs)) <= 1e-5 * scale, name); // zero gradient: ≤ 1e-5 · G (README)
        continue;
      }
      const reference = Array.from(expected.get(name)!.data as Float64Array);
      let actual: ArrayLike<number> = grad;
      if (name.endsWith('word_embeddings.weight')) {
        const rows = Array.from(expected.get(`${name}.rows`)!.data as Int32Array);
        const width = variable.shape[1]!;
        const listed = new Set(rows);
        for (let row = 0; row < variable.shape[0]!; row++) {
          if (!listed.has(row))
            assert.ok(
              grad.subarray(row * width, (row + 1) * width).every((g) => g === 0),
              `word row ${row} must get no gradient`,
            );
        }
        actual = rows.flatMap((row) => Array.from(grad.subarray(row * width, (row + 1) * width)));
      }
      const error = maxRelativeError(actual, reference);
      worst = Math.max(worst, error);
      assert.ok(error <= 1e-4, `${name}: ${error}`); // per tensor max|a − b| ≤ 1e-4 · max|b| (README: 1e-3, 1e-4 works too)
    }
    report(`${backend} worst per-tensor gradient error (BCE)`, worst);
    tf.dispose([value, ...Object.values(grads)]);
    reranker.dispose();
  });
}

test.run();
