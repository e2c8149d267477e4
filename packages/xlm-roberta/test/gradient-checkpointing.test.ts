/**
 * Gradient checkpointing recomputes each encoder layer in the backward: with the same dropout seed (dropout on),
 * the loss and every parameter gradient must equal the plain path's. The recomputed forward runs the same kernels
 * on the same inputs with the same masks, so the values agree to float32 rounding of the gradient accumulation
 * order: per tensor max|a − b| ≤ 1e-5 · max|b|, loss equal to 1e-6 relative. Also checks that the backward frees
 * what it made (no tensor left behind) and that another seed changes the loss (the comparison does see dropout).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tf, initBackend } from '@kotune/engine';
import { Embedder, Reranker } from '../src/index.ts';
import { cases, EMBEDDER_DIR, maxRelativeError, report, RERANKER_DIR } from './fixture.ts';

const inputs = cases.losses.reranker_group_ce.inputs;
const ids = () => tf.tensor2d(inputs.input_ids, undefined, 'int32');
const mask = () => tf.tensor2d(inputs.attention_mask, undefined, 'int32');

/** Loss and gradients of a scalar of the model output, as `kotune train` takes them (`tf.variableGrads`). */
function lossAndGrads(variables: Map<string, tf.Variable>, loss: () => tf.Scalar): { loss: number; grads: Map<string, Float32Array> } {
  const { value, grads } = tf.variableGrads(loss, [...variables.values()]);
  const result = {
    loss: value.dataSync()[0]!,
    grads: new Map([...variables].map(([name, v]) => [name, grads[v.name]!.dataSync() as Float32Array])),
  };
  tf.dispose([value, ...Object.values(grads)]);
  return result;
}

function assertSame(label: string, plain: ReturnType<typeof lossAndGrads>, checkpointed: ReturnType<typeof lossAndGrads>): void {
  assert.ok(Math.abs(checkpointed.loss - plain.loss) <= 1e-6 * Math.abs(plain.loss), `${label} loss ${checkpointed.loss} vs ${plain.loss}`); // relative 1e-6
  let worst = 0;
  for (const [name, grad] of plain.grads) {
    const error = maxRelativeError(checkpointed.grads.get(name)!, grad);
    worst = Math.max(worst, error);
    assert.ok(error <= 1e-5, `${label} ${name}: ${error}`); // per tensor max|a − b| ≤ 1e-5 · max|b| (float32 accumulation order)
  }
  report(`${label} worst per-tensor gradient difference, checkpointed vs plain`, worst);
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`${backend}: reranker loss and gradients with gradient checkpointing equal the plain path (dropout on)`, async () => {
    await initBackend({ backend, log: null });
    const reranker = await Reranker.load(RERANKER_DIR, { log: null, hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1 });
    const variables = reranker.variables();
    const run = (gradientCheckpointing: boolean) =>
      lossAndGrads(variables, () => {
        const logits = reranker.forward(ids(), mask(), { training: true, seed: 1234, gradientCheckpointing });
        return tf.mean(tf.square(tf.sub(logits, 0.5))) as tf.Scalar;
      });
    const plain = run(false);
    const before = tf.memory().numTensors;
    const checkpointed = run(true);
    assert.is(tf.memory().numTensors, before, 'the checkpointed backward leaves no tensor behind');
    assertSame(`${backend} reranker`, plain, checkpointed);
    // Another seed gives other masks, so the comparison above does see dropout.
    const otherSeed = lossAndGrads(
      variables,
      () =>
        tf.mean(
          tf.square(tf.sub(reranker.forward(ids(), mask(), { training: true, seed: 99, gradientCheckpointing: true }), 0.5)),
        ) as tf.Scalar,
    );
    assert.ok(Math.abs(otherSeed.loss - plain.loss) > 1e-6 * Math.abs(plain.loss), 'dropout changes the loss');
    reranker.dispose();
  });

  test(`${backend}: embedder gradients with gradient checkpointing equal the plain path (dropout on)`, async () => {
    await initBackend({ backend, log: null });
    const embedder = await Embedder.load(EMBEDDER_DIR, { log: null, hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1 });
    const variables = embedder.variables();
    const run = (gradientCheckpointing: boolean) =>
      lossAndGrads(variables, () => {
        const embeddings = embedder.forward(ids(), mask(), { training: true, seed: 7, gradientCheckpointing });
        return tf.sum(tf.mul(embeddings, tf.linspace(-1, 1, embeddings.size).reshape(embeddings.shape))) as tf.Scalar;
      });
    assertSame(`${backend} embedder`, run(false), run(true));
    embedder.dispose();
  });
}

test.run();
