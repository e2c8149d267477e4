/**
 * The export in transformers.js (@huggingface/transformers, local files only), against kotune: the models on
 * the fixtures' padded, 64-token batches, and the README's two Node examples (examples/transformers-js/*.mjs,
 * run as printed) against `Reranker.score` / `Embedder.encode`. Tolerance (fixture README, float32):
 * max|a − b| ≤ 1e-5 · max|b|.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AutoModel, AutoModelForSequenceClassification, AutoTokenizer, env, pipeline, Tensor } from '@huggingface/transformers';
import { initBackend } from '@kotune/engine';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import {
  cases,
  EMBEDDER_DIR,
  exportedCopy,
  kotuneOutput,
  maxRelativeError,
  padBatch,
  randomSequence,
  report,
  RERANKER_DIR,
  type Batch,
} from './support.ts';

await initBackend({ backend: 'wasm', log: null });
env.allowRemoteModels = false;
const TOLERANCE = 1e-5;
const EXAMPLES = fileURLToPath(new URL('../examples/transformers-js/', import.meta.url));
const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

const reranker = await Reranker.load(RERANKER_DIR, { log: null });
const embedder = await Embedder.load(EMBEDDER_DIR, { log: null });
const rerankerDir = await exportedCopy(RERANKER_DIR);
const embedderDir = await exportedCopy(EMBEDDER_DIR);

const tensors = (batch: Batch) => {
  const dims = [batch.inputIds.length, batch.inputIds[0]!.length];
  const int64 = (rows: number[][]) => new Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), dims);
  return { input_ids: int64(batch.inputIds), attention_mask: int64(batch.attentionMask) };
};
const fromCase = (c: { input_ids: number[][]; attention_mask: number[][] }): Batch => ({
  inputIds: c.input_ids,
  attentionMask: c.attention_mask,
});
const mixedBatch = padBatch([64, 2, 37, 5].map((length, i) => randomSequence(length, 32002, 17 + i)));

/** Runs an example as a user would (`node rerank.mjs DIR`) and parses the JSON line it prints. */
function runExample(file: string, dir: string): unknown {
  return JSON.parse(
    execFileSync(process.execPath, [`${EXAMPLES}${file}`, dir], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .at(-1)!,
  );
}

test('XLMRobertaForSequenceClassification: logits equal kotune on padded and 64-token batches', async () => {
  const model = await AutoModelForSequenceClassification.from_pretrained(rerankerDir, { dtype: 'fp32', local_files_only: true });
  for (const [name, batch] of [
    ['pairs_longest_first', fromCase(cases.reranker_forward.pairs_longest_first)],
    ['lengths 64/2/37/5', mixedBatch],
  ] as const) {
    const { logits } = await model(tensors(batch));
    assert.equal(logits.dims, [batch.inputIds.length, 1]);
    assert.ok(
      report(`transformers.js vs kotune, ${name}`, maxRelativeError(logits.data as Float32Array, kotuneOutput(reranker, batch))) <=
        TOLERANCE,
    );
  }
  await model.dispose();
});

test('XLMRobertaModel: last_hidden_state equals kotune on padded and 64-token batches', async () => {
  const model = await AutoModel.from_pretrained(embedderDir, { dtype: 'fp32', local_files_only: true });
  for (const [name, batch] of [
    ['8 texts padded to 64', fromCase(cases.embedder_forward)],
    ['lengths 64/2/37/5', mixedBatch],
  ] as const) {
    const { last_hidden_state: hidden } = await model(tensors(batch));
    assert.equal(hidden.dims, [batch.inputIds.length, 64, 32]);
    assert.ok(
      report(`transformers.js vs kotune, ${name}`, maxRelativeError(hidden.data as Float32Array, kotuneOutput(embedder, batch))) <=
        TOLERANCE,
    );
  }
  await model.dispose();
});

const queries = ['배고프다', '배고프다'];
const passages = ['뭐라도 챙겨 드세요.', '좋은 꿈 꾸세요.'];
const pairs = queries.map((q, i) => [q, passages[i]!] as [string, string]);
const texts = ['query: 배고파', 'passage: 밥 먹을 시간이에요.'];

test("transformers.js tokenizes the examples' texts as kotune does (so the examples compare models, not tokenizers)", async () => {
  const tokenizer = await AutoTokenizer.from_pretrained(rerankerDir, { local_files_only: true });
  const ids = tokenizer(queries, { text_pair: passages, padding: false }).input_ids as Tensor[] | Tensor;
  const rows = Array.isArray(ids) ? ids.map((t) => t.tolist()) : (ids.tolist() as bigint[][]);
  assert.equal(
    rows.map((r) => r.map(Number)),
    reranker.tokenizer.encodeRerankerPairs(pairs, { maxLength: 64, padding: false }).inputIds,
  );
  const single = texts.map((t) => (tokenizer(t).input_ids as Tensor).tolist().flat().map(Number));
  assert.equal(single, embedder.tokenizer.encodeBatch(texts, { maxLength: 64, padding: false }).inputIds);
});

test("README example rerank.mjs prints FlagReranker normalize=True scores: the sigmoid of kotune's logits", async () => {
  const scores = runExample('rerank.mjs', rerankerDir) as number[];
  const expected = await reranker.score(pairs, { normalize: true });
  assert.ok(report('rerank.mjs vs Reranker.score(normalize)', maxRelativeError(scores, expected)) <= TOLERANCE);
});

test('README example embed.mjs prints the CLS-pooled, normalised embeddings of Embedder.encode', async () => {
  const { dims, cosine, query } = runExample('embed.mjs', embedderDir) as { dims: number[]; cosine: number; query: number[] };
  assert.equal(dims, [2, 32]);
  const [q, p] = await embedder.encode(texts);
  assert.ok(report('embed.mjs vs Embedder.encode', maxRelativeError(query, q!)) <= TOLERANCE);
  let dot = 0;
  for (let i = 0; i < q!.length; i++) dot += q![i]! * p![i]!;
  assert.ok(Math.abs(cosine - dot) <= 1e-5, `cosine ${cosine} vs ${dot}`);
});

test('why the README says not to use text-classification for a one-label reranker: softmax over one label is 1', async () => {
  const classifier = await pipeline('text-classification', rerankerDir, { dtype: 'fp32', local_files_only: true });
  // The pipeline takes {text, text_pair} for pairs (its typings only say strings).
  const results = await classifier(queries.map((text, i) => ({ text, text_pair: passages[i]! })) as unknown as string[]);
  assert.equal(
    (results as { score: number }[]).map((r) => r.score),
    [1, 1],
  );
  await classifier.dispose();
});

test('the README prints both examples verbatim', () => {
  const readme = readFileSync(README, 'utf8');
  for (const file of ['rerank.mjs', 'embed.mjs'])
    assert.ok(readme.includes(readFileSync(`${EXAMPLES}${file}`, 'utf8')), `README.md holds ${file} as it is`);
});

test.after(() => {
  reranker.dispose();
  embedder.dispose();
});

test.run();
