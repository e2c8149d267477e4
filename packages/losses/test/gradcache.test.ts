/**
 * GradCache gives the plain loss's value and parameter gradients, for MNRL (plain and symmetric) and
 * InfoNCE, with mini-batches that do not divide the batch, on a small deterministic encoder
 * (embedding bag → tanh MLP) so the test needs no checkpoint. The XLM-R model version lives in
 * model-gradients.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initBackend, l2Normalize, tf } from '@kotune/engine';
import {
  cachedInfoNceLoss,
  cachedMultipleNegativesRankingLoss,
  infoNceLoss,
  miniBatches,
  multipleNegativesRankingLoss,
  multipleNegativesSymmetricRankingLoss,
} from '../src/index.ts';

const VOCAB = 50;
const H = 16;

function makeEncoder(backend: string) {
  const params = new Map<string, tf.Variable>();
  const add = (name: string, t: tf.Tensor) => {
    params.set(name, tf.variable(t, true, `${backend}-${name}`));
    t.dispose();
  };
  add('embeddings.weight', tf.randomNormal([VOCAB, H], 0, 0.5, 'float32', 11));
  add('dense.weight', tf.randomNormal([H, H], 0, 0.3, 'float32', 12));
  add('dense.bias', tf.randomNormal([H], 0, 0.1, 'float32', 13));
  add('unused.weight', tf.zeros([3]));
  /** Texts are token-id lists; the encoder is mean-of-embeddings → tanh(dense) → L2 normalise. */
  const embed = (texts: number[][]): tf.Tensor2D =>
    tf.tidy(() => {
      // Mean of the token embeddings as (token counts / length) · E: tf.gather's gradient has no wasm kernel.
      const counts = new Float32Array(texts.length * VOCAB);
      texts.forEach((ids, r) => ids.forEach((id) => (counts[r * VOCAB + id]! += 1 / ids.length)));
      const x = tf.tensor2d(counts, [texts.length, VOCAB]).matMul(params.get('embeddings.weight')!);
      const h = tf.tanh(x.matMul(params.get('dense.weight')!, false, true).add(params.get('dense.bias')!));
      return l2Normalize(h) as tf.Tensor2D;
    });
  return { params, embed };
}

let rngState = 5;
function randomTexts(n: number): number[][] {
  const next = () => (rngState = (rngState * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  return Array.from({ length: n }, () => Array.from({ length: 2 + Math.floor(next() * 6) }, () => Math.floor(next() * VOCAB)));
}

/** Per-tensor max|a − b| / max|b| (README measure); float32 with a different summation order. */
function assertGradsEqual(actual: Map<string, tf.Tensor>, expected: tf.NamedTensorMap, names: Map<string, string>, what: string): number {
  let worst = 0;
  assert.equal(new Set(actual.keys()), new Set(Object.keys(expected).map((k) => names.get(k)!)), `${what}: same gradient set`);
  for (const [varName, e] of Object.entries(expected)) {
    const a = actual.get(names.get(varName)!)!.dataSync();
    const b = e.dataSync();
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < b.length; i++) {
      scale = Math.max(scale, Math.abs(b[i]!));
      diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    }
    worst = Math.max(worst, diff / scale);
    assert.ok(diff <= 1e-5 * scale, `${what} ${varName}: max diff ${diff} vs scale ${scale}`); // float32 reordering only
  }
  return worst;
}

for (const backend of ['cpu', 'wasm'] as const) {
  test(`${backend}: cached MNRL / symmetric MNRL / InfoNCE equal the plain losses (value and gradients)`, async () => {
    await initBackend({ backend, log: null });
    const { params, embed } = makeEncoder(backend);
    const names = new Map([...params].map(([n, v]) => [v.name, n]));
    const varList = [...params.values()];
    const before = tf.memory().numTensors;
    const b = 11;
    const columns = [randomTexts(b), randomTexts(b), randomTexts(b)];

    for (const symmetric of [false, true]) {
      const lossFn = symmetric ? multipleNegativesSymmetricRankingLoss : multipleNegativesRankingLoss;
      const plain = tf.variableGrads(() => {
        const [a, ...c] = columns.map(embed);
        return lossFn(a!, c);
      }, varList);
      const cached = cachedMultipleNegativesRankingLoss(
        columns.map((c) => miniBatches(c, 4)),
        embed,
        params,
        { symmetric },
      );
      const plainLoss = plain.value.dataSync()[0]!;
      assert.ok(
        Math.abs(cached.loss - plainLoss) <= 1e-6 * Math.abs(plainLoss),
        `symmetric=${symmetric}: loss ${cached.loss} vs ${plainLoss}`,
      ); // float32
      const worst = assertGradsEqual(cached.grads, plain.grads, names, `MNRL symmetric=${symmetric}`);
      console.log(`${backend}: cached MNRL symmetric=${symmetric} worst relative gradient difference ${worst.toExponential(2)}`);
      tf.dispose([plain.value, ...Object.values(plain.grads), ...cached.grads.values()]);
    }

    const queries = randomTexts(5);
    const passages = randomTexts(15);
    for (const inBatchNegatives of [true, false]) {
      const plain = tf.variableGrads(() => infoNceLoss(embed(queries), embed(passages), { inBatchNegatives }), varList);
      const cached = cachedInfoNceLoss(miniBatches(queries, 2), miniBatches(passages, 4), embed, params, { inBatchNegatives });
      const plainLoss = plain.value.dataSync()[0]!;
      assert.ok(Math.abs(cached.loss - plainLoss) <= 1e-5 * Math.abs(plainLoss), `InfoNCE loss ${cached.loss} vs ${plainLoss}`); // float32, τ = 0.02 scores ~50
      const worst = assertGradsEqual(cached.grads, plain.grads, names, `InfoNCE inBatch=${inBatchNegatives}`);
      console.log(
        `${backend}: cached InfoNCE inBatchNegatives=${inBatchNegatives} worst relative gradient difference ${worst.toExponential(2)}`,
      );
      tf.dispose([plain.value, ...Object.values(plain.grads), ...cached.grads.values()]);
    }
    assert.is(tf.memory().numTensors, before, 'no tensor leaked');
    tf.dispose(varList);
  });
}

test('miniBatches keeps order and the short tail', () => {
  assert.equal(miniBatches([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  assert.throws(() => miniBatches([1], 0), /mini-batch size must be an integer ≥ 1/);
});

test.run();
