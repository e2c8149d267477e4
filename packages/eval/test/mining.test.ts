import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng } from '@kotune/data';
import { parseSamplingRange, sampleNegatives, uniquePassages } from '../src/index.ts';

const pool = Array.from({ length: 40 }, (_, i) => `p${i}`);
const ranked = pool.map((_, i) => i); // row i at rank i

test('range parsing', () => {
  assert.equal(parseSamplingRange('10-210'), { start: 10, end: 210 });
  assert.throws(() => parseSamplingRange('10'), /10-210/);
  assert.throws(() => parseSamplingRange('5-5'), /above the start/);
});

test('negatives come from the sampling range, without positives or the query, deterministic for a seed', () => {
  const input = { query: 'p12', pos: ['p11', 'p3'], ranked, pool, range: { start: 10, end: 30 }, negativeNumber: 5 };
  const a = sampleNegatives({ ...input, rng: new Rng(1) });
  const b = sampleNegatives({ ...input, rng: new Rng(1) });
  assert.equal(a, b);
  assert.is(a.length, 5);
  assert.is(new Set(a).size, 5);
  for (const text of a) {
    const rank = Number(text.slice(1));
    assert.ok(rank >= 10 && rank < 30, `${text} in range`);
    assert.ok(!['p11', 'p3', 'p12'].includes(text));
  }
  const c = sampleNegatives({ ...input, rng: new Rng(2) });
  assert.not.equal(a, c);
});

test('when the range holds fewer than needed: all of them, in rank order, then random padding', () => {
  const out = sampleNegatives({
    query: 'q',
    pos: ['p36'],
    ranked,
    pool,
    range: { start: 35, end: 210 },
    negativeNumber: 8,
    rng: new Rng(3),
  });
  assert.equal(out.slice(0, 4), ['p35', 'p37', 'p38', 'p39']);
  assert.is(out.length, 8);
  assert.is(new Set(out).size, 8, 'padding never repeats a negative');
  assert.not.ok(out.includes('p36'));
});

test('a pool too small gives what it has', () => {
  const out = sampleNegatives({
    query: 'a',
    pos: ['b'],
    ranked: [0, 1, 2],
    pool: ['a', 'b', 'c'],
    range: { start: 0, end: 10 },
    negativeNumber: 5,
    rng: new Rng(4),
  });
  assert.equal(out, ['c']);
  assert.equal(uniquePassages(['x', 'y', 'x']), ['x', 'y']);
});

test.run();
