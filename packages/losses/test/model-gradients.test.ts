/**
 * Full parameter-gradient parity of every loss on the tiny XLM-R fixtures (test/fixtures/xlmr-tiny):
 * the model's forward, the loss, and tf autodiff against the float64 PyTorch gradients in
 * `grads-<loss>.safetensors`, on both backends. Checks (README "Tolerances"): loss relative 1e-5;
 * per tensor max|a − b| ≤ 1e-3·max|b|; tensors in `analytically_zero_grads` max|a| ≤ 1e-5·G
 * (G = largest |grad| in the file); word-embedding rows not listed in `.rows` ≤ 1e-5·G.
 * Also: GradCache on the real model equals the plain MNRL / InfoNCE gradients with dropout on.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { initBackend, tf } from '@kotune/engine';
import { readSafetensors } from '@kotune/weights';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import {
  binaryCrossEntropyLoss,
  cachedInfoNceLoss,
  cachedMultipleNegativesRankingLoss,
  embedderDistillationLoss,
  groupCrossEntropyLoss,
  infoNceLoss,
  miniBatches,
  multipleNegativesRankingLoss,
  multipleNegativesSymmetricRankingLoss,
  rerankerDistillationLoss,
} from '../src/index.ts';

const FIXTURES = new URL('../../../test/fixtures/xlmr-tiny/', import.meta.url).pathname;
const cases = JSON.parse(readFileSync(`${FIXTURES}cases.json`, 'utf8'));
const L = cases.losses;

const LOSS_RTOL = 1e-5; // README: losses relative 1e-5 (float32 reference ≤ 8e-7)
const GRAD_RTOL = 1e-3; // README: per tensor max|a−b| ≤ 1e-3·max|b| (float32 reference ≤ 5.3e-6)
const ZERO_RTOL = 1e-5; // README: analytically zero tensors ≤ 1e-5·G (float32 reference ≤ 5e-8·G)

interface Encoded {
  input_ids: number[][];
  attention_mask: number[][];
}
const ids = (e: Encoded) => tf.tensor2d(e.input_ids, undefined, 'int32');
const mask = (e: Encoded) => tf.tensor2d(e.attention_mask, undefined, 'int32');

type Model = {
  forward(ids: tf.Tensor2D, mask: tf.Tensor2D, options?: { training?: boolean; seed?: number }): tf.Tensor;
  variables(): Map<string, tf.Variable>;
};

const embed = (model: Model, e: Encoded, seed?: number) =>
  model.forward(ids(e), mask(e), seed === undefined ? {} : { training: true, seed }) as tf.Tensor2D;

/** Each case: the model folder it uses and the loss as a function of that model. */
const lossCases: Record<string, { model: 'reranker' | 'embedder'; loss: (m: Model) => tf.Scalar }> = {
  reranker_group_ce: { model: 'reranker', loss: (m) => groupCrossEntropyLoss(embed(m, L.reranker_group_ce.inputs), 4) },
  bce: { model: 'reranker', loss: (m) => binaryCrossEntropyLoss(embed(m, L.reranker_group_ce.inputs), L.bce.labels) },
  distill_reranker: {
    model: 'reranker',
    loss: (m) => rerankerDistillationLoss(embed(m, L.reranker_group_ce.inputs), L.distill_reranker.teacher_scores, 4),
  },
  mnrl: {
    model: 'embedder',
    loss: (m) =>
      multipleNegativesRankingLoss(
        embed(m, L.mnrl.inputs.anchors),
        [embed(m, L.mnrl.inputs.positives), embed(m, L.mnrl.inputs.negatives)],
        { scale: L.mnrl.scale },
      ),
  },
  mnrl_symmetric: {
    model: 'embedder',
    loss: (m) =>
      multipleNegativesSymmetricRankingLoss(
        embed(m, L.mnrl.inputs.anchors),
        [embed(m, L.mnrl.inputs.positives), embed(m, L.mnrl.inputs.negatives)],
        { scale: L.mnrl.scale },
      ),
  },
  infonce: {
    model: 'embedder',
    loss: (m) =>
      infoNceLoss(embed(m, L.infonce.inputs.queries), embed(m, L.infonce.inputs.passages), { temperature: L.infonce.temperature }),
  },
  distill_embedder: {
    model: 'embedder',
    loss: (m) =>
      embedderDistillationLoss(embed(m, L.infonce.inputs.queries), embed(m, L.infonce.inputs.passages), L.distill_embedder.teacher_scores, {
        temperature: L.distill_embedder.temperature,
      }),
  },
};

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

/** Compares our gradients with the file; returns the worst relative error and the tensor it occurs in. */
async function compareGradients(name: string, ours: Map<string, tf.Tensor>): Promise<{ worst: number; where: string }> {
  const { tensors } = await readSafetensors(`${FIXTURES}${L[name].grads_file}`);
  const zero = new Set<string>(L[name].analytically_zero_grads);
  let g = 0;
  for (const [key, t] of tensors) if (!key.endsWith('.rows')) g = Math.max(g, maxAbs(t.data as Float64Array));
  let worst = 0;
  let where = '';
  for (const [key, t] of tensors) {
    if (key.endsWith('.rows')) continue;
    const expected = t.data as Float64Array;
    const tensor = ours.get(key);
    const width = t.shape[t.shape.length - 1]!;
    let actual: Float32Array;
    const rowsKey = `${key}.rows`;
    if (tensors.has(rowsKey)) {
      // Word embeddings: the file holds only the rows of the input tokens; every other row must be ~0.
      const rows = tensors.get(rowsKey)!.data as Int32Array;
      assert.ok(tensor, `${name}: no gradient for ${key}`);
      const full = tensor!.dataSync() as Float32Array;
      actual = new Float32Array(expected.length);
      const listed = new Set(rows);
      rows.forEach((r, i) => actual.set(full.subarray(r * width, (r + 1) * width), i * width));
      let offRows = 0;
      for (let r = 0; r < full.length / width; r++)
        if (!listed.has(r)) offRows = Math.max(offRows, maxAbs(full.subarray(r * width, (r + 1) * width)));
      assert.ok(offRows <= ZERO_RTOL * g, `${name} ${key}: unlisted rows reach ${offRows} > ${ZERO_RTOL}·G`);
    } else {
      // A parameter the loss does not reach (pooler.dense.* for embedders) has no gradient in tf: it is 0.
      actual = tensor ? (tensor.dataSync() as Float32Array) : new Float32Array(expected.length);
    }
    assert.is(actual.length, expected.length, `${name} ${key}: size`);
    let diff = 0;
    for (let i = 0; i < expected.length; i++) diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    if (zero.has(key)) {
      assert.ok(maxAbs(actual) <= ZERO_RTOL * g, `${name} ${key}: analytically zero but max ${maxAbs(actual)} > ${ZERO_RTOL}·G (G=${g})`);
      continue;
    }
    const rel = diff / maxAbs(expected);
    assert.ok(rel <= GRAD_RTOL, `${name} ${key}: relative gradient error ${rel.toExponential(2)} > ${GRAD_RTOL} on ${tf.getBackend()}`);
    if (rel > worst) {
      worst = rel;
      where = key;
    }
  }
  return { worst, where };
}

function gradsOf(model: Model, loss: () => tf.Scalar): { value: number; grads: Map<string, tf.Tensor> } {
  const params = model.variables();
  const names = new Map([...params].map(([n, v]) => [v.name, n]));
  const out = tf.variableGrads(loss, [...params.values()]);
  const value = out.value.dataSync()[0]!;
  out.value.dispose();
  return { value, grads: new Map(Object.entries(out.grads).map(([k, g]) => [names.get(k)!, g])) };
}

for (const backend of ['cpu', 'wasm'] as const) {
  const models: Partial<Record<'reranker' | 'embedder', Model>> = {};
  const load = async (kind: 'reranker' | 'embedder'): Promise<Model> => {
    await initBackend({ backend, log: null });
    models[kind] ??= (kind === 'reranker'
      ? await Reranker.load(`${FIXTURES}reranker`)
      : await Embedder.load(`${FIXTURES}embedder`)) as unknown as Model;
    return models[kind]!;
  };

  for (const [name, c] of Object.entries(lossCases)) {
    test(`${backend}: ${name} loss and every parameter gradient equal the float64 reference`, async () => {
      const model = await load(c.model);
      const { value, grads } = gradsOf(model, () => c.loss(model));
      const rel = Math.abs(value - L[name].loss) / L[name].loss;
      assert.ok(rel <= LOSS_RTOL, `${name}: loss ${value} vs ${L[name].loss} (relative ${rel.toExponential(2)})`);
      const { worst, where } = await compareGradients(name, grads);
      console.log(
        `${backend}: ${name.padEnd(18)} loss rel ${rel.toExponential(2)}  worst gradient rel ${worst.toExponential(2)} (${where})`,
      );
      tf.dispose([...grads.values()]);
    });
  }

  test(`${backend}: GradCache on the model (dropout on, one seed per mini-batch) equals the plain loss`, async () => {
    const model = await load('embedder');
    // Mini-batches of the recorded inputs; each chunk carries its own dropout seed, used in both passes.
    type Chunk = { e: Encoded; seed: number };
    const chunked = (e: Encoded, size: number, seed0: number): Chunk[] =>
      miniBatches(
        e.input_ids.map((_, i) => i),
        size,
      ).map((rows, k) => ({
        e: { input_ids: rows.map((r) => e.input_ids[r]!), attention_mask: rows.map((r) => e.attention_mask[r]!) },
        seed: seed0 + k,
      }));
    const embedChunk = (c: Chunk) => embed(model, c.e, c.seed);
    const concatEmbed = (chunks: Chunk[]) => tf.concat(chunks.map(embedChunk)) as tf.Tensor2D;

    const cols = [L.mnrl.inputs.anchors, L.mnrl.inputs.positives, L.mnrl.inputs.negatives].map((e, i) => chunked(e, 2, 100 * i));
    const plain = gradsOf(model, () => multipleNegativesRankingLoss(concatEmbed(cols[0]!), [concatEmbed(cols[1]!), concatEmbed(cols[2]!)]));
    const cached = cachedMultipleNegativesRankingLoss(cols, embedChunk, model.variables());
    const q = chunked(L.infonce.inputs.queries, 1, 7);
    const p = chunked(L.infonce.inputs.passages, 3, 9);
    const plainNce = gradsOf(model, () => infoNceLoss(concatEmbed(q), concatEmbed(p)));
    const cachedNce = cachedInfoNceLoss(q, p, embedChunk, model.variables());
    for (const [what, a, b] of [
      ['MNRL', cached, plain],
      ['InfoNCE', cachedNce, plainNce],
    ] as const) {
      assert.ok(Math.abs(a.loss - b.value) <= 1e-5 * b.value, `${what}: cached loss ${a.loss} vs ${b.value}`); // float32
      let worst = 0;
      for (const [n, g] of b.grads) {
        const x = a.grads.get(n)!.dataSync();
        const y = g.dataSync();
        let d = 0;
        for (let i = 0; i < y.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
        const scale = maxAbs(y);
        if (scale > 0) worst = Math.max(worst, d / scale);
        assert.ok(d <= 1e-4 * scale + 1e-9, `${what} ${n}: cached vs plain gradient max diff ${d} (scale ${scale})`); // float32 summation order
      }
      console.log(`${backend}: cached ${what} vs plain, dropout on: worst gradient rel ${worst.toExponential(2)}`);
    }
    tf.dispose([...plain.grads.values(), ...cached.grads.values(), ...plainNce.grads.values(), ...cachedNce.grads.values()]);
  });
}

test.run();
