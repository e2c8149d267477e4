/**
 * `Reranker.score` and `Embedder.encode` from raw text: tokenized with the fixture tokenizer, run in
 * length-sorted batches, returned in input order, equal to the reference outputs of the same token ids.
 * Tolerance (README, float32): 1e-5 relative for logits and embeddings.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initBackend } from '@kotune/engine';
import { cosineSimilarity, Embedder, Reranker } from '../src/index.ts';
import { cases, EMBEDDER_DIR, maxRelativeError, RERANKER_DIR, report } from './fixture.ts';

let reranker: Reranker;
let embedder: Embedder;

test.before(async () => {
  await initBackend({ backend: 'wasm', log: null });
  reranker = await Reranker.load(RERANKER_DIR, { log: null });
  embedder = await Embedder.load(EMBEDDER_DIR, { log: null });
});
test.after(() => {
  reranker.dispose();
  embedder.dispose();
});

const tokenization = (name: string) => cases.tokenization.cases.find((c: { name: string }) => c.name === name);
const unpadded = (ids: number[], mask: number[]) => ids.filter((_, i) => mask[i] === 1);

test('score: FlagEmbedding inputs, logits in input order whatever the batch size, sigmoid with normalize', async () => {
  const reference = cases.reranker_forward.pairs_only_second;
  const pairs: [string, string][] = tokenization('pairs_only_second').inputs;
  // With a query of ≤ 48 tokens (3/4 of 64), FlagEmbedding's cut is the only_second truncation of the reference.
  const { inputIds } = reranker.tokenizer.encodeRerankerPairs(pairs, { maxLength: 64, padding: false });
  const same = pairs.map(
    (_, i) => JSON.stringify(inputIds[i]) === JSON.stringify(unpadded(reference.input_ids[i], reference.attention_mask[i])),
  );
  assert.ok(same.filter(Boolean).length >= 6, `only ${same.filter(Boolean).length} pairs comparable`);
  for (const batchSize of [1, 3, 8]) {
    const scores = await reranker.score(pairs, { maxLength: 64, batchSize });
    const error = maxRelativeError(
      scores.filter((_, i) => same[i]),
      reference.logits.filter((_: number, i: number) => same[i]),
    );
    assert.ok(report(`score() logits, batch size ${batchSize}`, error) <= 1e-5); // 1e-5 relative (README)
  }
  const probabilities = await reranker.score(pairs, { maxLength: 64, normalize: true });
  const sigmoid = reference.logits.map((x: number) => 1 / (1 + Math.exp(-x)));
  assert.ok(
    maxRelativeError(
      probabilities.filter((_, i) => same[i]),
      sigmoid.filter((_: number, i: number) => same[i]),
    ) <= 1e-5,
  ); // 1e-5 relative
  assert.ok(probabilities.every((p) => p > 0 && p < 1));
  assert.equal(await reranker.score([]), []);
});

test('score: the default max length is capped at the model positions; longer ones are errors', async () => {
  const [long] = tokenization('pair_only_second_error').inputs as [string, string][];
  const [score] = await reranker.score([long!]);
  assert.ok(Number.isFinite(score));
  try {
    await reranker.score([long!], { maxLength: 512 });
    assert.unreachable('512 positions do not exist in this model');
  } catch (error) {
    assert.match((error as Error).message, /maxLength 512 must be an integer ≤ 64/);
  }
});

test('encode: CLS + Normalize from the folder, input order, prefix', async () => {
  const texts: string[] = tokenization('singles').inputs;
  const expected = cases.embedder_forward.cls_normalized;
  for (const batchSize of [2, 8]) {
    const embeddings = await embedder.encode(texts, { batchSize });
    assert.is(embeddings.length, texts.length);
    const error = maxRelativeError(
      embeddings.flatMap((e) => Array.from(e)),
      expected.flat(),
    );
    assert.ok(report(`encode() cls_normalized, batch size ${batchSize}`, error) <= 1e-5); // 1e-5 relative (README)
  }
  const raw = await embedder.encode(texts.slice(0, 2), { normalize: false });
  assert.ok(maxRelativeError(Array.from(raw[1]!), cases.embedder_forward.cls[1]) <= 1e-5); // 1e-5 relative (README)
  const [prefixed] = await embedder.encode([texts[2]!], { prefix: 'query: ' });
  const [joined] = await embedder.encode([`query: ${texts[2]}`]);
  assert.equal(Array.from(prefixed!), Array.from(joined!));
});

test('cosineSimilarity: util.cos_sim of two vectors', () => {
  assert.ok(Math.abs(cosineSimilarity([1, 2, 3], [2, 4, 6]) - 1) < 1e-15);
  assert.is(cosineSimilarity([1, 0], [0, 5]), 0);
  assert.is(cosineSimilarity([0, 0], [1, 1]), 0);
  const [a, b] = [cases.embedder_forward.cls[0], cases.embedder_forward.cls[1]];
  const dot = a.reduce((s: number, x: number, i: number) => s + x * b[i], 0);
  const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(cosineSimilarity(a, b) - dot / (norm(a) * norm(b))) < 1e-12);
  assert.throws(() => cosineSimilarity([1], [1, 2]), /length/);
});

test.run();
