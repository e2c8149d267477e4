/**
 * `kotune eval` and `kotune score-data` end to end on the tiny fixture models. The expected metrics are
 * computed here from the fixture's float64 reference outputs (reranker logits of `rerank_batch0`, CLS
 * embeddings of the `singles` texts), so these tests check the whole chain: reading, tokenising, the
 * model, ranking and the metrics.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateRankings, rankCandidates } from '@kotune/metrics';
import { evalCutoffs, readRerankQueries } from '@kotune/eval';
import { run as evalCommand } from '../src/commands/eval.ts';
import { run as scoreData } from '../src/commands/score-data.ts';

const root = new URL('../../../', import.meta.url).pathname;
const fixtureDir = join(root, 'test/fixtures/xlmr-tiny');
const cases = JSON.parse(readFileSync(join(fixtureDir, 'cases.json'), 'utf8'));
const tokenCase = (name: string) => cases.tokenization.cases.find((c: { name: string }) => c.name === name);
const dir = mkdtempSync(join(tmpdir(), 'kotune-eval-cli-'));

async function capture(fn: () => Promise<void>): Promise<string> {
  const log = console.log;
  const error = console.error;
  let out = '';
  console.log = (...a: unknown[]) => {
    out += `${a.join(' ')}\n`;
  };
  console.error = () => {};
  try {
    await fn();
  } finally {
    console.log = log;
    console.error = error;
  }
  return out;
}

function assertMetricsClose(actual: Record<string, number>, expected: Record<string, number>, what: string) {
  assert.equal(Object.keys(actual).sort(), Object.keys(expected).sort(), `${what}: metric names`);
  // Rankings are the same as the float64 reference (adjacent scores differ by > 1e-3 ≫ float32 error), so
  // the metrics are computed from identical rankings: float64 arithmetic, 1e-12.
  for (const [name, value] of Object.entries(expected))
    assert.ok(Math.abs(actual[name] - value) <= 1e-12, `${what} ${name}: ${actual[name]} vs ${value}`);
}

test('reranker eval: first stage and fixture reranker rows, JSON, markdown and PNG', async () => {
  const pairs: [string, string][] = tokenCase('rerank_batch0').inputs; // 2 queries × 4 passages, positive first
  const logits: number[] = cases.losses.reranker_group_ce.logits;
  const data = join(dir, 'rerank.jsonl');
  // Query 0 as pos/neg (first stage: positive first); query 1 as a candidates list with the positive last.
  writeFileSync(
    data,
    [
      JSON.stringify({ query: pairs[0][0], pos: [pairs[0][1]], neg: pairs.slice(1, 4).map((p) => p[1]) }),
      JSON.stringify({ query: pairs[4][0], candidates: [5, 6, 7, 4].map((i) => ({ text: pairs[i][1], relevance: i === 4 ? 1 : 0 })) }),
    ].join('\n'),
  );
  const cutoffs = evalCutoffs();
  // Query 0's candidates come in a seeded random order (as listed the positive would be first); query 1's as listed.
  const [query0] = await readRerankQueries(data);
  const firstStage = evaluateRankings(
    [
      { ranked: [0, 1, 2, 3], relevant: [...query0!.relevant] },
      { ranked: [0, 1, 2, 3], relevant: [3] },
    ],
    cutoffs,
  ).means;
  const reference = evaluateRankings(
    [
      { ranked: rankCandidates([0, 1, 2, 3].map((i) => ({ id: i, score: logits[i] }))), relevant: [0] },
      { ranked: rankCandidates([5, 6, 7, 4].map((i) => ({ id: i, score: logits[i] }))), relevant: [4] },
    ],
    cutoffs,
  ).means;
  const model = join(fixtureDir, 'reranker');
  const outDir = join(dir, 'rerank-out');
  const out = await capture(() =>
    evalCommand(['--model', model, '--model', model, '--data', data, '--output-dir', outDir, '--backend', 'cpu', '--quiet']),
  );
  console.log(out);
  const summary = JSON.parse(readFileSync(join(outDir, 'eval.json'), 'utf8'));
  assert.is(summary.task, 'reranker');
  assert.is(summary.queries, 2);
  assert.equal(
    Object.keys(summary.systems),
    ['first stage (file order; {query, pos, neg} lines in random order, seed 42)', `BM25 (${model} tokenizer pieces)`, model],
    'baselines first, each model once',
  );
  assertMetricsClose(
    summary.systems['first stage (file order; {query, pos, neg} lines in random order, seed 42)'],
    firstStage,
    'first stage',
  );
  assertMetricsClose(summary.systems[model], reference, 'reranker');
  assert.match(out, /\*\*Top-k 1\*\*/);
  assert.match(
    out,
    new RegExp(`\\| ${model.replace(/[/.]/g, '\\$&')} \\| ${reference['f1@1'].toFixed(4)} \\| ${reference['recall@1'].toFixed(4)} \\|`),
  );
  assert.is(readFileSync(join(outDir, 'eval.md'), 'utf8').split('**Top-k').length - 1, 4);
  assert.equal([...readFileSync(join(outDir, 'eval.png')).subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG');
});

test('embedder eval: exact cosine top-k on the fixture embedder; the second run reads the corpus cache', async () => {
  const texts: string[] = tokenCase('singles').inputs;
  const vectors: number[][] = cases.embedder_forward.cls_normalized;
  const corpus = join(dir, 'corpus.jsonl');
  const queries = join(dir, 'queries.jsonl');
  writeFileSync(corpus, texts.map((text, i) => JSON.stringify({ id: `t${i}`, text })).join('\n'));
  const relevantOf = (i: number) => [`t${(i + 3) % 8}`, `t${(i + 5) % 8}`];
  const asked = texts.map((_, i) => i).filter((i) => texts[i].trim() !== ''); // the empty text stays in the corpus only
  writeFileSync(queries, asked.map((i) => JSON.stringify({ query: texts[i], relevant: relevantOf(i) })).join('\n'));
  const dot = (a: number[], b: number[]) => a.reduce((s, x, j) => s + x * b[j], 0);
  const reference = evaluateRankings(
    asked.map((i) => ({
      ranked: rankCandidates(vectors.map((v, j) => ({ id: j, score: dot(vectors[i], v) }))).map((j) => `t${j}`),
      relevant: relevantOf(i),
    })),
    evalCutoffs(),
  ).means;
  const model = join(fixtureDir, 'embedder');
  const cacheDir = join(dir, 'cache');
  const args = ['--model', model, '--corpus', corpus, '--queries', queries, '--cache-dir', cacheDir, '--backend', 'cpu', '--quiet'];
  const out1 = await capture(() => evalCommand([...args, '--output-dir', join(dir, 'embed-1')]));
  console.log(out1);
  assertMetricsClose(JSON.parse(readFileSync(join(dir, 'embed-1', 'eval.json'), 'utf8')).systems[model], reference, 'embedder');
  const cacheFiles = readdirSync(cacheDir);
  assert.is(cacheFiles.filter((f) => f.endsWith('.f32')).length, 1);
  const cacheData = join(cacheDir, cacheFiles.find((f) => f.endsWith('.f32'))!);
  assert.is(readFileSync(cacheData).byteLength, 4 * 32 * 8); // 4 bytes × dim × N
  // Corrupting the cached vectors (same size) must change the result of a re-run: proof the cache is read.
  writeFileSync(cacheData, Buffer.alloc(4 * 32 * 8));
  await capture(() => evalCommand([...args, '--output-dir', join(dir, 'embed-2')]));
  const second = JSON.parse(readFileSync(join(dir, 'embed-2', 'eval.json'), 'utf8')).systems[model];
  assert.is.not(second['mrr@10'], reference['mrr@10']);
  assert.ok(existsSync(join(dir, 'embed-2', 'eval.png')));
});

test('score-data adds the fixture reranker logits as pos_scores / neg_scores', async () => {
  const pairs: [string, string][] = tokenCase('rerank_batch0').inputs;
  const logits: number[] = cases.losses.reranker_group_ce.logits;
  const input = join(dir, 'train.jsonl');
  const output = join(dir, 'train-scored.jsonl');
  writeFileSync(
    input,
    [0, 4]
      .map((g) => JSON.stringify({ query: pairs[g][0], pos: [pairs[g][1]], neg: pairs.slice(g + 1, g + 4).map((p) => p[1]), id: g }))
      .join('\n'),
  );
  await capture(() =>
    scoreData(['--input', input, '--output', output, '--reranker', join(fixtureDir, 'reranker'), '--backend', 'cpu', '--quiet']),
  );
  const lines = readFileSync(output, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  lines.forEach((line, i) => {
    const g = i * 4;
    assert.is(line.id, g);
    const scores = [...line.pos_scores, ...line.neg_scores];
    assert.is(line.pos_scores.length, 1);
    assert.is(line.neg_scores.length, 3);
    const maxRef = Math.max(...logits.slice(g, g + 4).map(Math.abs));
    // README: logits max|a−b| ≤ 1e-5 · max|b| for a float32 implementation
    scores.forEach((s: number, j: number) =>
      assert.ok(Math.abs(s - logits[g + j]) <= 1e-5 * maxRef, `line ${i} score ${j}: ${s} vs ${logits[g + j]}`),
    );
  });
});

test.run();
