import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadImage } from '@napi-rs/canvas';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateRankings, metricNames } from '@kotune/metrics';
import {
  bm25Scores,
  evalCutoffs,
  firstStageMetrics,
  firstStageName,
  markdownTables,
  readRerankQueries,
  renderBarChart,
  rerankedMetrics,
  scoreCandidates,
  whitespaceWords,
  type ScorePairs,
} from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kotune-eval-'));

test('eval cut-offs include every metric at 1, 3, 5, 10 and the docs/evaluation.md set', () => {
  const names = metricNames(evalCutoffs());
  for (const k of [1, 3, 5, 10])
    for (const m of ['f1', 'recall', 'precision', 'mrr', 'ndcg', 'accuracy']) assert.ok(names.includes(`${m}@${k}`), `${m}@${k}`);
  assert.ok(names.includes('map@100'));
});

test('markdown table: one block per k, a row per system, numbers to 4 places', () => {
  const metrics = (v: number) => Object.fromEntries(metricNames(evalCutoffs()).map((n) => [n, v]));
  const md = markdownTables([
    { name: 'first stage', metrics: metrics(0.25) },
    { name: 'a|b', metrics: metrics(0.123456) },
  ]);
  const lines = md.trim().split('\n');
  assert.is(lines[0], '**Top-k 1**');
  assert.is(lines[2], '| Model | F1 | Recall | Precision | MRR | NDCG |');
  assert.is(lines[4], '| first stage | 0.2500 | 0.2500 | 0.2500 | 0.2500 | 0.2500 |');
  assert.is(lines[5], '| a\\|b | 0.1235 | 0.1235 | 0.1235 | 0.1235 | 0.1235 |');
  assert.is(md.match(/\*\*Top-k/g)!.length, 4);
});

test('reranker evaluation: first stage vs a scorer that knows the answer vs one that inverts it', async () => {
  const data = join(dir, 'rerank.jsonl');
  writeFileSync(
    data,
    [
      JSON.stringify({ query: 'q1', pos: ['a'], neg: ['b', 'c', 'd'] }),
      '',
      JSON.stringify({
        query: 'q2',
        candidates: [
          { text: 'x', relevance: 0 },
          { text: 'y', relevance: 0 },
          { text: 'z', relevance: 2 },
        ],
      }),
    ].join('\n'),
  );
  const queries = await readRerankQueries(data);
  assert.equal(
    queries.map((q) => q.line),
    [1, 3],
  );
  const relevantTexts = new Set(['a', 'z']);
  const oracle: ScorePairs = async (pairs) => pairs.map(([, p]) => (relevantTexts.has(p) ? 1 : 0));
  const inverse: ScorePairs = async (pairs) => pairs.map(([, p]) => (relevantTexts.has(p) ? 0 : 1));
  const before = firstStageMetrics(queries).means;
  const good = rerankedMetrics(queries, await scoreCandidates(queries, oracle, { chunkPairs: 2, progress: false })).means;
  const bad = rerankedMetrics(queries, await scoreCandidates(queries, inverse, { progress: false })).means;
  const q1Positive = queries[0]!.candidates.indexOf('a'); // q1's candidates in a seeded random order
  assert.equal([...queries[0]!.relevant], [q1Positive]);
  assert.is(before['mrr@10'], (1 / (q1Positive + 1) + 1 / 3) / 2); // q2's relevant third, as its candidates list says
  assert.is(good['mrr@10'], 1);
  assert.is(bad['mrr@10'], (1 / 4 + 1 / 3) / 2); // ties among irrelevant keep first-stage order
  // the same numbers through the generic function
  assert.equal(
    before,
    evaluateRankings(
      [
        { ranked: [0, 1, 2, 3], relevant: [q1Positive] },
        { ranked: [0, 1, 2], relevant: [2] },
      ],
      evalCutoffs(),
    ).means,
  );
  assert.is(firstStageName(queries, 42), 'first stage (file order; {query, pos, neg} lines in random order, seed 42)');
});

test('{query, pos, neg} lines: a seeded random candidate order, so the first stage and tied scores do not know the answer', async () => {
  const data = join(dir, 'pos-neg.jsonl');
  const lines = Array.from({ length: 200 }, (_, i) => ({
    query: `q${i}`,
    pos: [`p${i}`],
    neg: Array.from({ length: 9 }, (_, j) => `n${i}-${j}`),
  }));
  writeFileSync(data, lines.map((l) => JSON.stringify(l)).join('\n'));
  const queries = await readRerankQueries(data);
  assert.is(firstStageName(queries, 42), 'random order (seed 42)');
  const positions = queries.map((q) => q.candidates.indexOf(`p${q.line - 1}`));
  assert.equal(
    queries.map((q) => [...q.relevant]),
    positions.map((p) => [p]),
    'relevant follows the positive',
  );
  assert.equal(new Set(positions).size, 10, 'the positive lands in every slot');
  // MRR@10 of a random order of 1 relevant among 10 is mean(1/r) = 0.2929; 200 queries put it within ±0.06 (3 sd).
  const random = firstStageMetrics(queries).means['mrr@10']!;
  assert.ok(Math.abs(random - 0.2929) < 0.06, `first stage MRR@10 ${random}`);
  const constant: ScorePairs = async (pairs) => pairs.map(() => 0.5);
  const tied = rerankedMetrics(queries, await scoreCandidates(queries, constant, { progress: false })).means;
  assert.is(tied['mrr@10'], random, 'a scorer that ties everything is no better than the random order');
  assert.equal(
    (await readRerankQueries(data)).map((q) => q.candidates),
    queries.map((q) => q.candidates),
    'the same order on every read',
  );
  assert.not.equal(
    (await readRerankQueries(data, { seed: 7 })).map((q) => q.candidates),
    queries.map((q) => q.candidates),
    'another seed, another order',
  );

  // BM25 over the candidates: a positive that shares the query's words ranks first, whatever its slot.
  const words = [{ query: 'red apple pie', pos: ['apple pie with red apples'], neg: ['blue sky', 'green grass today', 'a pie chart'] }];
  writeFileSync(data, words.map((l) => JSON.stringify(l)).join('\n'));
  const lexical = await readRerankQueries(data);
  const bm25 = rerankedMetrics(lexical, bm25Scores(lexical, whitespaceWords)).means;
  assert.is(bm25['mrr@10'], 1);
});

test('bad reranker lines name file, line and field; a scorer returning too few scores is caught', async () => {
  const data = join(dir, 'bad.jsonl');
  writeFileSync(data, `${JSON.stringify({ query: 'q', pos: ['a'] })}\n${JSON.stringify({ query: 'q', candidates: [{ text: 'x' }] })}\n`);
  try {
    await readRerankQueries(data);
    assert.unreachable();
  } catch (e) {
    assert.is((e as Error).message, `${data}:2: candidates[0].relevance must be a number`);
  }
  const queries = [{ query: 'q', candidates: ['a', 'b'], relevant: new Set([0]), line: 1 }];
  try {
    await scoreCandidates(queries, async () => [1], { progress: false });
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /1 scores for 2 pairs/);
  }
});

test('bar chart: a PNG of the asked size whose bars differ between systems', async () => {
  const metrics = (v: number) => Object.fromEntries(metricNames(evalCutoffs()).map((n) => [n, v]));
  const png = renderBarChart(
    [
      { name: 'low', metrics: metrics(0.2) },
      { name: 'high', metrics: metrics(0.9) },
    ],
    { width: 800, height: 400 },
  );
  assert.equal([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const image = await loadImage(png);
  assert.is(image.width, 800);
  assert.is(image.height, 400);
  const blank = renderBarChart(
    [
      { name: 'low', metrics: metrics(0) },
      { name: 'high', metrics: metrics(0) },
    ],
    { width: 800, height: 400 },
  );
  assert.not.ok(png.equals(blank), 'the values change the picture');
  writeFileSync(join(dir, 'chart.png'), png);
  assert.ok(readFileSync(join(dir, 'chart.png')).length > 1000);
});

test.run();
