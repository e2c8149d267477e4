import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { DEFAULT_CUTOFFS, evaluateRankings, metricNames, queryMetrics, rankCandidates } from '../src/index.ts';

interface FixtureQuery {
  qid: string;
  relevant: string[];
  ranked: [string, number][];
  expected: Record<string, number> | null;
}
const fixture = JSON.parse(readFileSync(new URL('../../../test/fixtures/xlmr-tiny/cases.json', import.meta.url), 'utf8')).ir_metrics as {
  queries: FixtureQuery[];
  expected_mean: Record<string, number>;
  accuracy_at_k: number[];
  precision_recall_at_k: number[];
  mrr_at_k: number[];
  ndcg_at_k: number[];
  map_at_k: number[];
};
const TOL = 1e-12; // README: IR metrics are plain float64 arithmetic

function close(actual: number, expected: number, what: string) {
  assert.ok(Math.abs(actual - expected) <= TOL, `${what}: ${actual} vs ${expected}`);
}
/** The fixture's "hit_rate@k" is accuracy@k; F1 is not in the fixture and is checked from its P and R. */
function ourName(name: string) {
  return name.replace(/^hit_rate@/, 'accuracy@');
}

test('default cut-offs are the fixture ones', () => {
  assert.equal(DEFAULT_CUTOFFS.accuracyAtK, fixture.accuracy_at_k);
  assert.equal(DEFAULT_CUTOFFS.precisionRecallAtK, fixture.precision_recall_at_k);
  assert.equal(DEFAULT_CUTOFFS.mrrAtK, fixture.mrr_at_k);
  assert.equal(DEFAULT_CUTOFFS.ndcgAtK, fixture.ndcg_at_k);
  assert.equal(DEFAULT_CUTOFFS.mapAtK, fixture.map_at_k);
});

test('per-query metrics equal the sentence-transformers fixture', () => {
  let checked = 0;
  for (const q of fixture.queries) {
    if (q.expected === null) continue;
    const got = queryMetrics(
      q.ranked.map(([d]) => d),
      new Set(q.relevant),
    );
    for (const [name, value] of Object.entries(q.expected)) close(got[ourName(name)], value, `${q.qid} ${name}`);
    for (const k of DEFAULT_CUTOFFS.precisionRecallAtK) {
      const p = q.expected[`precision@${k}`];
      const r = q.expected[`recall@${k}`];
      close(got[`f1@${k}`], p + r > 0 ? (2 * p * r) / (p + r) : 0, `${q.qid} f1@${k}`);
    }
    checked++;
  }
  assert.is(checked, 7);
});

test('F1@k by hand: hits at ranks 2, 4, 9 of 3 relevant', () => {
  const got = queryMetrics(['x', 'a', 'y', 'b', 'z', 'w', 'v', 'u', 'c'], new Set(['a', 'b', 'c']));
  close(got['f1@5'], (2 * 0.4 * (2 / 3)) / (0.4 + 2 / 3), 'f1@5'); // P = 2/5, R = 2/3 → 0.5
  close(got['f1@5'], 0.5, 'f1@5');
  close(got['f1@1'], 0, 'f1@1 (P + R = 0)');
});

test('means over the fixture equal expected_mean; the query without relevant docs is skipped', () => {
  const result = evaluateRankings(fixture.queries.map((q) => ({ ranked: q.ranked.map(([d]) => d), relevant: q.relevant })));
  assert.is(result.evaluated, 7);
  assert.is(result.skippedNoRelevant, 1);
  for (const [name, value] of Object.entries(fixture.expected_mean)) close(result.means[ourName(name)], value, `mean ${name}`);
  assert.equal(Object.keys(result.means), metricNames());
});

test('ranking from scores: descending, ties by id ascending, duplicates keep the first score', () => {
  const ranked = rankCandidates([
    { id: 'd3', score: 0.5 },
    { id: 'd1', score: 0.5 },
    { id: 'd2', score: 0.9 },
    { id: 'd1', score: 99 },
    { id: 'd0', score: -1 },
  ]);
  assert.equal(ranked, ['d2', 'd1', 'd3', 'd0']);
  assert.equal(
    rankCandidates([
      { id: 10, score: 1 },
      { id: 9, score: 1 },
      { id: 100, score: 1 },
    ]),
    [9, 10, 100],
  );
  assert.throws(() => rankCandidates([{ id: 'a', score: NaN }]), /NaN/);
});

test('MAP@k divides by min(k, |relevant|); NDCG@k ideal has min(|relevant|, k) ones', () => {
  const cutoffs = { accuracyAtK: [3], precisionRecallAtK: [3], mrrAtK: [3], ndcgAtK: [3], mapAtK: [3] };
  const got = queryMetrics(['a', 'x', 'b', 'c'], new Set(['a', 'b', 'c', 'd', 'e']), cutoffs);
  close(got['map@3'], (1 / 1 + 2 / 3) / 3, 'map@3');
  const ideal = 1 + 1 / Math.log2(3) + 1 / Math.log2(4);
  close(got['ndcg@3'], (1 + 1 / Math.log2(4)) / ideal, 'ndcg@3');
  close(got['precision@3'], 2 / 3, 'precision@3');
  close(got['recall@3'], 2 / 5, 'recall@3');
});

test('a repeated id in a ranked list counts once', () => {
  const got = queryMetrics(['a', 'a', 'b'], new Set(['a', 'b']));
  close(got['precision@3'], 2 / 3, 'precision@3');
  close(got['mrr@10'], 1, 'mrr');
  close(got['ndcg@10'], 1, 'ndcg (both relevant at ranks 1, 2)');
});

test('an empty ranking scores 0 and still counts in the mean', () => {
  const result = evaluateRankings([
    { ranked: ['a'], relevant: ['a'] },
    { ranked: [], relevant: ['b'] },
  ]);
  assert.is(result.evaluated, 2);
  close(result.means['mrr@10'], 0.5, 'mrr');
  close(result.means['accuracy@1'], 0.5, 'accuracy@1');
});

test('bad cut-offs and queries without relevant docs are refused by queryMetrics', () => {
  assert.throws(() => queryMetrics(['a'], new Set()), /no relevant/);
  assert.throws(() => queryMetrics(['a'], new Set(['a']), { ...DEFAULT_CUTOFFS, mrrAtK: [0] }), /cut-off 0/);
});

test.run();
