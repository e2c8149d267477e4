/**
 * The 3-step training run of `adamw` in test/fixtures/xlmr-tiny/cases.json on the tiny reranker:
 * grouped CE → clip_grad_norm_(1.0) → AdamW (HF decay grouping) at the linear-warmup lr, compared per
 * step (loss, grad norm, clip coefficient, lr) and at the end (every weight vs adamw-final.safetensors,
 * the loss on batch 0 after training), on both backends. README tolerances: loss / grad norm relative
 * 1e-5, lr exact, final weights max abs 2e-6 per tensor except the noise-dominated parameters (atol 1e-3).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { initBackend, tf } from '@kotune/engine';
import { readSafetensors } from '@kotune/weights';
import { Reranker } from '@kotune/xlm-roberta';
import { groupCrossEntropyLoss } from '@kotune/losses';
import { AdamW, clipGradNorm, decayParameterNames, learningRateSchedule } from '../src/index.ts';

const FIXTURES = new URL('../../../test/fixtures/xlmr-tiny/', import.meta.url).pathname;
const A = JSON.parse(readFileSync(`${FIXTURES}cases.json`, 'utf8')).adamw;

const STEP_RTOL = 1e-5;
const WEIGHT_ATOL = 2e-6;
const NOISE_ATOL = 1e-3;

interface Batch {
  input_ids: number[][];
  attention_mask: number[][];
}

function relative(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

for (const backend of ['cpu', 'wasm'] as const) {
  test(`${backend}: 3 AdamW steps on the reranker equal torch (per-step loss, grad norm, lr; final weights)`, async () => {
    await initBackend({ backend, log: null });
    const model = await Reranker.load(`${FIXTURES}reranker`);
    const params: Map<string, tf.Variable> = model.variables();
    const names = new Map([...params].map(([n, v]) => [v.name, n]));
    assert.equal(new Set(decayParameterNames(params.keys())), new Set(A.decay_parameters), 'decay grouping');
    const opt = new AdamW(params, { betas: A.betas, eps: A.eps, weightDecay: A.weight_decay });
    const lrAt = learningRateSchedule('linear', A.lr, { warmupSteps: A.num_warmup_steps, totalSteps: A.num_training_steps });
    const lossOn = (b: Batch) => () =>
      groupCrossEntropyLoss(
        model.forward(tf.tensor2d(b.input_ids, undefined, 'int32'), tf.tensor2d(b.attention_mask, undefined, 'int32')),
        A.group_size,
      );
    const report: string[] = [];
    for (const [i, step] of (
      A.steps as (Batch & { lr: number; loss: number; grad_norm_before_clip: number; clip_coef: number })[]
    ).entries()) {
      const { value, grads } = tf.variableGrads(lossOn(step), [...params.values()]);
      const loss = value.dataSync()[0]!;
      const named = new Map(Object.entries(grads).map(([k, g]) => [names.get(k)!, g]));
      const clipped = clipGradNorm(named, A.max_grad_norm);
      const lr = lrAt(i);
      assert.ok(relative(loss, step.loss) <= STEP_RTOL, `step ${i + 1} loss ${loss} vs ${step.loss}`);
      assert.ok(
        relative(clipped.norm, step.grad_norm_before_clip) <= STEP_RTOL,
        `step ${i + 1} grad norm ${clipped.norm} vs ${step.grad_norm_before_clip}`,
      );
      assert.ok(
        relative(clipped.clipCoef, step.clip_coef) <= STEP_RTOL,
        `step ${i + 1} clip coef ${clipped.clipCoef} vs ${step.clip_coef}`,
      );
      assert.ok(relative(lr, step.lr === 0 ? 1 : step.lr) <= 1e-15 || lr === step.lr, `step ${i + 1} lr ${lr} vs ${step.lr}`); // exact in float64
      report.push(
        `step ${i + 1}: loss rel ${relative(loss, step.loss).toExponential(1)}, grad norm rel ${relative(clipped.norm, step.grad_norm_before_clip).toExponential(1)}, lr ${lr}`,
      );
      opt.step(clipped.grads, lr);
      tf.dispose([value, ...Object.values(grads), ...clipped.grads.values()]);
    }
    const { tensors: final } = await readSafetensors(`${FIXTURES}${A.final_weights_file}`);
    const noise = new Set<string>(A.noise_dominated_parameters);
    let worst = 0;
    let worstName = '';
    let worstNoise = 0;
    assert.equal(new Set(final.keys()), new Set(params.keys()), 'same parameter names');
    for (const [name, expected] of final) {
      const actual = params.get(name)!.dataSync();
      const e = expected.data as Float32Array;
      let diff = 0;
      for (let j = 0; j < e.length; j++) diff = Math.max(diff, Math.abs(actual[j]! - e[j]!));
      if (noise.has(name)) {
        worstNoise = Math.max(worstNoise, diff);
        assert.ok(diff <= NOISE_ATOL, `${name} (noise-dominated): max abs ${diff} > ${NOISE_ATOL}`);
      } else {
        assert.ok(diff <= WEIGHT_ATOL, `${name}: max abs ${diff} > ${WEIGHT_ATOL} on ${backend}`);
        if (diff > worst) {
          worst = diff;
          worstName = name;
        }
      }
    }
    const after = tf.tidy(() => lossOn(A.steps[0])().dataSync()[0]!);
    assert.ok(
      relative(after, A.loss_on_rerank_batch0_after_training) <= STEP_RTOL,
      `loss after training ${after} vs ${A.loss_on_rerank_batch0_after_training}`,
    );
    console.log(
      `${backend}: ${report.join('; ')}\n${backend}: final weights max abs ${worst.toExponential(2)} (${worstName}); noise-dominated ${worstNoise.toExponential(2)}; loss after training rel ${relative(after, A.loss_on_rerank_batch0_after_training).toExponential(1)}`,
    );
    opt.dispose();
    model.dispose();
  });
}

test.run();
