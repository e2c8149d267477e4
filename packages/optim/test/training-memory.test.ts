/**
 * 200 training steps of the tiny reranker (forward, grouped CE, gradients, clipping, AdamW) leave the
 * tensor count and the allocated bytes exactly where they were after the first step: nothing leaks per
 * step. Tiny inputs (2 queries × 2 passages of 6 tokens) keep it fast.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initBackend, tf } from '@kotune/engine';
import { Reranker } from '@kotune/xlm-roberta';
import { groupCrossEntropyLoss } from '@kotune/losses';
import { AdamW, clipGradNorm, learningRateSchedule } from '../src/index.ts';

const FIXTURES = new URL('../../../test/fixtures/xlmr-tiny/', import.meta.url).pathname;
const STEPS = 200;

test('wasm: 200 training steps keep tf.memory() numTensors and numBytes flat', async () => {
  await initBackend({ backend: 'wasm', log: null });
  const model = await Reranker.load(`${FIXTURES}reranker`);
  const params: Map<string, tf.Variable> = model.variables();
  const names = new Map([...params].map(([n, v]) => [v.name, n]));
  const opt = new AdamW(params, { weightDecay: 0.01 });
  const lrAt = learningRateSchedule('linear', 1e-4, { warmupSteps: 10, totalSteps: STEPS });
  const inputIds = [
    [0, 10739, 1244, 2, 2, 4579],
    [0, 10739, 1244, 2, 2, 7222],
    [0, 29789, 1980, 2, 2, 4049],
    [0, 29789, 1980, 2, 2, 836],
  ];
  const attentionMask = inputIds.map((r) => r.map(() => 1));
  let baseline: { numTensors: number; numBytes: number } | undefined;
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const ids = tf.tensor2d(inputIds, undefined, 'int32');
    const mask = tf.tensor2d(attentionMask, undefined, 'int32');
    const { value, grads } = tf.variableGrads(
      () => groupCrossEntropyLoss(model.forward(ids, mask, { training: true, seed: step }), 2),
      [...params.values()],
    );
    losses.push(value.dataSync()[0]!);
    const clipped = clipGradNorm(new Map(Object.entries(grads).map(([k, g]) => [names.get(k)!, g])), 1.0);
    opt.step(clipped.grads, lrAt(step));
    tf.dispose([ids, mask, value, ...Object.values(grads), ...clipped.grads.values()]);
    const { numTensors, numBytes } = tf.memory();
    if (step === 0)
      baseline = { numTensors, numBytes }; // the optimizer's moments exist from step 1 on
    else {
      assert.is(numTensors, baseline!.numTensors, `step ${step + 1}: tensor count`);
      assert.is(numBytes, baseline!.numBytes, `step ${step + 1}: bytes`);
    }
  }
  assert.ok(losses.every(Number.isFinite), 'finite losses');
  assert.ok(losses.slice(-10).reduce((a, b) => a + b) < losses.slice(0, 10).reduce((a, b) => a + b), 'the loss goes down on a fixed batch');
  console.log(
    `200 steps: ${baseline!.numTensors} tensors, ${(baseline!.numBytes / 2 ** 20).toFixed(1)} MiB throughout; loss ${losses[0]!.toFixed(4)} → ${losses.at(-1)!.toFixed(4)}`,
  );
  opt.dispose();
  model.dispose();
});

test.run();
