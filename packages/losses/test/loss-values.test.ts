/**
 * Loss values against the float64 PyTorch reference in test/fixtures/xlmr-tiny/cases.json, starting from
 * the recorded intermediate logits / scores, on both backends; plus the analytic gradients of the
 * score-level losses and the embedding-level entry points.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { initBackend, l2Normalize, tf } from '@kotune/engine';
import {
  binaryCrossEntropyLoss,
  crossEntropy,
  embedderDistillationLoss,
  embedderDistillationLossFromScores,
  groupCrossEntropyLoss,
  infoNceLoss,
  infoNceLossFromScores,
  multipleNegativesRankingLoss,
  multipleNegativesRankingLossFromScores,
  multipleNegativesScores,
  multipleNegativesSymmetricRankingLoss,
  multipleNegativesSymmetricRankingLossFromScores,
  rerankerDistillationLoss,
  softCrossEntropy,
} from '../src/index.ts';

const cases = JSON.parse(readFileSync(new URL('../../../test/fixtures/xlmr-tiny/cases.json', import.meta.url), 'utf8'));
const L = cases.losses;

/** README tolerance for losses: relative 1e-5 in float32 (measured float32 reference: ≤ 8e-7). */
const LOSS_RTOL = 1e-5;

function assertRelative(actual: number, expected: number, rtol: number, what: string): void {
  const rel = Math.abs(actual - expected) / Math.abs(expected);
  assert.ok(rel <= rtol, `${what}: ${actual} vs ${expected} (relative ${rel.toExponential(2)} > ${rtol}) on ${tf.getBackend()}`);
}

function value(loss: tf.Scalar): number {
  const v = loss.dataSync()[0]!;
  loss.dispose();
  return v;
}

function softmaxRows(rows: number[][]): number[][] {
  return rows.map((r) => {
    const m = Math.max(...r);
    const e = r.map((x) => Math.exp(x - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  });
}

for (const backend of ['cpu', 'wasm'] as const) {
  const name = (s: string) => `${backend}: ${s}`;
  const setup = () => initBackend({ backend, log: null });

  test(name('reranker group CE and BCE from the recorded logits'), async () => {
    await setup();
    const logits = tf.tensor1d(L.reranker_group_ce.logits);
    assertRelative(
      value(groupCrossEntropyLoss(logits, L.reranker_group_ce.group_size)),
      L.reranker_group_ce.loss,
      LOSS_RTOL,
      'reranker_group_ce',
    );
    assertRelative(value(binaryCrossEntropyLoss(logits, L.bce.labels)), L.bce.loss, LOSS_RTOL, 'bce');
    logits.dispose();
  });

  test(name('reranker distillation from logits and teacher scores (flat or [B, G] teacher layout)'), async () => {
    await setup();
    const c = L.distill_reranker;
    const logits = tf.tensor1d(c.logits);
    assertRelative(value(rerankerDistillationLoss(logits, c.teacher_scores, c.group_size)), c.loss, LOSS_RTOL, 'distill_reranker');
    assertRelative(
      value(rerankerDistillationLoss(logits, c.teacher_scores.flat(), c.group_size)),
      c.loss,
      LOSS_RTOL,
      'distill_reranker (flat teacher)',
    );
    const grouped = logits.reshape([2, 4]) as tf.Tensor2D;
    const targets = tf.tensor2d(softmaxRows(c.teacher_scores));
    assertRelative(value(softCrossEntropy(grouped, targets)), c.soft_ce_loss, LOSS_RTOL, 'distill_reranker soft CE');
    tf.dispose([logits, grouped, targets]);
  });

  test(name('MNRL and symmetric MNRL from the recorded scores'), async () => {
    await setup();
    const scores = tf.tensor2d(L.mnrl.scores) as tf.Tensor2D;
    assertRelative(value(multipleNegativesRankingLossFromScores(scores)), L.mnrl.loss, LOSS_RTOL, 'mnrl');
    assertRelative(value(multipleNegativesSymmetricRankingLossFromScores(scores)), L.mnrl_symmetric.loss, LOSS_RTOL, 'mnrl_symmetric');
    const pairsOnly = scores.slice([0, 0], [3, 3]) as tf.Tensor2D;
    assertRelative(
      value(multipleNegativesSymmetricRankingLossFromScores(pairsOnly)),
      L.mnrl_symmetric.loss_without_negatives,
      LOSS_RTOL,
      'mnrl_symmetric without negatives',
    );
    tf.dispose([scores, pairsOnly]);
  });

  test(name('InfoNCE and embedder distillation from the recorded scores'), async () => {
    await setup();
    const scores = tf.tensor2d(L.infonce.scores) as tf.Tensor2D;
    assertRelative(value(infoNceLossFromScores(scores, L.infonce.group_size)), L.infonce.loss, LOSS_RTOL, 'infonce');
    const d = L.distill_embedder;
    assertRelative(
      value(embedderDistillationLossFromScores(scores, d.teacher_scores, d.group_size)),
      d.loss,
      LOSS_RTOL,
      'distill_embedder',
    );
    scores.dispose();
  });

  test(name('embedder distillation gradient w.r.t. the scores: (softmax − onehot(i·G))/B + (softmax(own group) − teacher)/B'), async () => {
    await setup();
    const d = L.distill_embedder;
    const s: number[][] = L.infonce.scores;
    const g = tf
      .grad((x: tf.Tensor) => embedderDistillationLossFromScores(x as tf.Tensor2D, d.teacher_scores, d.group_size))(tf.tensor2d(s))
      .arraySync() as number[][];
    const t = softmaxRows(d.teacher_scores);
    const b = s.length;
    const G = d.group_size;
    for (let i = 0; i < b; i++) {
      const full = softmaxRows([s[i]!])[0]!;
      const own = softmaxRows([s[i]!.slice(i * G, i * G + G)])[0]!;
      for (let j = 0; j < s[i]!.length; j++) {
        let expected = (full[j]! - (j === i * G ? 1 : 0)) / b;
        if (j >= i * G && j < i * G + G) expected += (own[j - i * G]! - t[i]![j - i * G]!) / b;
        assert.ok(Math.abs(g[i]![j]! - expected) <= 1e-6, `d/dscores[${i}][${j}] ${g[i]![j]} vs ${expected}`); // float32, |values| ≤ 1
      }
    }
  });

  test(name('cross-entropy gradients are (softmax − target)/B; BCE gradient is (σ(x) − y)/N, also at x = 0'), async () => {
    await setup();
    const rows = [
      [47.1, 39.2, 45.3, 45.7],
      [-3, 0, 0, 2.5],
    ];
    const targets = [0, 3];
    const g = tf
      .grad((x: tf.Tensor) => crossEntropy(x as tf.Tensor2D, targets))(tf.tensor2d(rows))
      .arraySync() as number[][];
    const p = softmaxRows(rows);
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 4; j++) {
        const expected = (p[i]![j]! - (targets[i] === j ? 1 : 0)) / 2;
        assert.ok(Math.abs(g[i]![j]! - expected) <= 1e-6, `dCE/dx[${i}][${j}] ${g[i]![j]} vs ${expected}`); // float32, |values| ≤ 0.5
      }
    const x = [0, 2, -30, 40];
    const y = [1, 0, 0.25, 1];
    const gb = tf
      .grad((t: tf.Tensor) => binaryCrossEntropyLoss(t, y))(tf.tensor1d(x))
      .dataSync();
    const lb = value(binaryCrossEntropyLoss(tf.tensor1d(x), y));
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    const expectedLoss = x.reduce((s, v, i) => s - (y[i]! * Math.log(sig(v)) + (1 - y[i]!) * Math.log(sig(-v))), 0) / 4;
    assertRelative(lb, expectedLoss, 1e-6, 'BCE at large |x|'); // float32; no overflow at x = 40 or −30
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(gb[i]! - (sig(x[i]!) - y[i]!) / 4) <= 1e-7, `dBCE/dx[${i}] ${gb[i]}`);
  });

  test(name('embedding-level entry points equal the score-level ones; cosine ignores the norms; in-batch negatives off'), async () => {
    await setup();
    const b = 3;
    const h = 8;
    const anchors = tf.randomNormal([b, h], 0, 1, 'float32', 1) as tf.Tensor2D;
    const pos = tf.randomNormal([b, h], 0, 1, 'float32', 2) as tf.Tensor2D;
    const neg = tf.randomNormal([b, h], 0, 1, 'float32', 3) as tf.Tensor2D;
    const a = anchors.arraySync();
    const docs = [...pos.arraySync(), ...neg.arraySync()];
    const cos = (u: number[], v: number[]) => u.reduce((s, x, i) => s + x * v[i]!, 0) / Math.hypot(...u) / Math.hypot(...v);
    const scores = a.map((u) => docs.map((v) => 20 * cos(u, v)));
    const fromJs = value(multipleNegativesRankingLossFromScores(tf.tensor2d(scores) as tf.Tensor2D));
    assertRelative(value(multipleNegativesRankingLoss(anchors, [pos, neg])), fromJs, 1e-5, 'MNRL from embeddings');
    assertRelative(
      value(multipleNegativesRankingLoss(anchors.mul(3) as tf.Tensor2D, [pos, neg.mul(0.5) as tf.Tensor2D])),
      fromJs,
      1e-5,
      'MNRL scale-invariant',
    );
    const symJs = value(multipleNegativesSymmetricRankingLossFromScores(tf.tensor2d(scores) as tf.Tensor2D));
    assertRelative(value(multipleNegativesSymmetricRankingLoss(anchors, [pos, neg])), symJs, 1e-5, 'symmetric MNRL from embeddings');
    const dotScores = multipleNegativesScores(anchors, [pos], { similarity: 'dot', scale: 1 }).arraySync();
    assert.ok(Math.abs(dotScores[1]![2]! - a[1]!.reduce((s, x, i) => s + x * docs[2]![i]!, 0)) < 1e-5, 'dot similarity');

    // InfoNCE: 2 queries × groups of 3, normalised embeddings, τ = 0.05.
    const q = l2Normalize(anchors.slice([0, 0], [2, h])) as tf.Tensor2D;
    const p = l2Normalize(tf.concat([pos, neg], 0)) as tf.Tensor2D;
    const qa = q.arraySync();
    const pa = p.arraySync();
    const dot = (u: number[], v: number[]) => u.reduce((s, x, i) => s + x * v[i]!, 0) / 0.05;
    const full = qa.map((u) => pa.map((v) => dot(u, v)));
    const lse = (r: number[]) => {
      const m = Math.max(...r);
      return m + Math.log(r.reduce((s, x) => s + Math.exp(x - m), 0));
    };
    const inBatch = (lse(full[0]!) - full[0]![0]! + lse(full[1]!) - full[1]![3]!) / 2;
    const local = [full[0]!.slice(0, 3), full[1]!.slice(3, 6)];
    const ownOnly = (lse(local[0]!) - local[0]![0]! + lse(local[1]!) - local[1]![0]!) / 2;
    assertRelative(value(infoNceLoss(q, p, { temperature: 0.05 })), inBatch, 1e-5, 'InfoNCE with in-batch negatives');
    assertRelative(
      value(infoNceLoss(q, p, { temperature: 0.05, inBatchNegatives: false })),
      ownOnly,
      1e-5,
      'InfoNCE without in-batch negatives',
    );
    const teacher = [
      [2, 0.5, -1],
      [1.2, 0.9, 0],
    ];
    const t = softmaxRows(teacher);
    const softCe =
      -(
        t[0]!.reduce((s, w, j) => s + w * (local[0]![j]! - lse(local[0]!)), 0) +
        t[1]!.reduce((s, w, j) => s + w * (local[1]![j]! - lse(local[1]!)), 0)
      ) / 2;
    assertRelative(
      value(embedderDistillationLoss(q, p, teacher, { temperature: 0.05 })),
      softCe + inBatch,
      1e-5,
      'embedder distillation, in-batch',
    );
    assertRelative(
      value(embedderDistillationLoss(q, p, teacher, { temperature: 0.05, inBatchNegatives: false })),
      softCe + ownOnly,
      1e-5,
      'embedder distillation, own group',
    );
    tf.dispose([anchors, pos, neg, q, p]);
  });

  test(name('bad shapes are clear errors'), async () => {
    await setup();
    const logits = tf.zeros([6]);
    assert.throws(() => groupCrossEntropyLoss(logits, 4), /group size 4 does not divide the 6 logits/);
    assert.throws(
      () =>
        rerankerDistillationLoss(
          logits,
          [
            [1, 2],
            [3, 4],
          ],
          3,
        ),
      /teacher scores: 2 per query, but the student has 3/,
    );
    assert.throws(() => binaryCrossEntropyLoss(logits, [1, 0]), /2 labels for 6 logits/);
    assert.throws(() => crossEntropy(logits.reshape([2, 3]) as tf.Tensor2D, [0, 3]), /target 3 outside 0..2/);
    assert.throws(() => infoNceLoss(tf.zeros([2, 4]) as tf.Tensor2D, tf.zeros([3, 4]) as tf.Tensor2D), /B·G rows/);
    logits.dispose();
  });
}

test.run();
