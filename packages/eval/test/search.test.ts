import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng } from '@kotune/data';
import { Bm25Index, normalizeInPlace, searchTopK, TopK, VectorMatrix, whitespaceWords } from '../src/index.ts';

function randomVectors(rng: Rng, n: number, dim: number): Float32Array[] {
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, () => rng.next() * 2 - 1));
}

test('TopK keeps the k best, ties by index ascending', () => {
  const top = new TopK(3);
  [
    [5, 0.1],
    [2, 0.9],
    [7, 0.5],
    [1, 0.5],
    [9, 0.95],
    [3, 0.5],
  ].forEach(([i, s]) => top.push(i, s));
  assert.equal(top.sorted(), [
    { index: 9, score: 0.95 },
    { index: 2, score: 0.9 },
    { index: 1, score: 0.5 },
  ]);
  assert.throws(() => new TopK(0), /positive integer/);
});

test('searchTopK equals a full sort of cosine similarities', () => {
  const rng = new Rng(7);
  const dim = 16;
  const corpusVectors = randomVectors(rng, 300, dim);
  const queries = randomVectors(rng, 21, dim);
  const matrix = new VectorMatrix(300, dim);
  matrix.append(corpusVectors.slice(0, 100));
  matrix.append(corpusVectors.slice(100));
  const cos = (a: Float32Array, b: Float32Array) => {
    let dot = 0,
      na = 0,
      nb = 0;
    for (let i = 0; i < dim; i++) {
      dot += a[i] * b[i];
      na += a[i] * a[i];
      nb += b[i] * b[i];
    }
    return dot / Math.sqrt(na * nb);
  };
  const results = searchTopK(matrix, queries, 10);
  queries.forEach((q, qi) => {
    const expected = corpusVectors
      .map((c, index) => ({ index, score: cos(q, c) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, 10);
    assert.equal(
      results[qi].map((h) => h.index),
      expected.map((h) => h.index),
      `query ${qi}`,
    );
    results[qi].forEach((h, j) => assert.ok(Math.abs(h.score - expected[j].score) < 1e-5, 'float32 storage of unit vectors: 1e-5'));
  });
  assert.is(matrix.data.byteLength, 4 * dim * 300);
});

/** `run` with `KOTUNE_NATIVE` set to `value` (`off`: the JavaScript scorer; unset: the native one where the addon is built). */
function withNative<T>(value: string | undefined, run: () => T): T {
  const saved = process.env.KOTUNE_NATIVE;
  if (value === undefined) delete process.env.KOTUNE_NATIVE;
  else process.env.KOTUNE_NATIVE = value;
  try {
    return run();
  } finally {
    if (saved === undefined) delete process.env.KOTUNE_NATIVE;
    else process.env.KOTUNE_NATIVE = saved;
  }
}

test('native and JavaScript scoring give the same hits, bit for bit, across query and row blocks', () => {
  const rng = new Rng(5);
  const dim = 24;
  // 5000 rows: a full block of 4096 and a short one; 70 queries: a block of 64 and one of 6 (groups of four and two left over).
  const matrix = new VectorMatrix(5000, dim);
  matrix.append(randomVectors(rng, 5000, dim));
  const queries = randomVectors(rng, 70, dim);
  const native = withNative(undefined, () => searchTopK(matrix, queries, 7));
  const js = withNative('off', () => searchTopK(matrix, queries, 7));
  assert.equal(native, js);
});

for (const native of [undefined, 'off'])
  test(`KOTUNE_NATIVE=${native ?? 'auto'}: searchTopK equals a brute-force sort with many exact ties (ties by row ascending), for any k and a short last block`, () =>
    withNative(native, () => {
      const rng = new Rng(11);
      const dim = 12;
      // 7 distinct directions repeated over 203 rows: every score is shared by ~29 rows.
      const distinct = randomVectors(rng, 7, dim);
      const rows = 203;
      const matrix = new VectorMatrix(rows, dim);
      matrix.append(Array.from({ length: rows }, () => distinct[rng.int(distinct.length)]));
      // 10 queries: two full blocks of four and a short one; the zero query scores 0 everywhere (a 203-way tie).
      const queries = [...randomVectors(rng, 8, dim), new Float32Array(dim), distinct[3]];
      const bruteForce = (q: Float32Array, k: number) => {
        const unit = normalizeInPlace(Float32Array.from(q));
        const all = Array.from({ length: rows }, (_, index) => {
          let score = 0;
          for (let d = 0; d < dim; d++) score += unit[d] * matrix.data[index * dim + d];
          return { index, score };
        });
        return all.sort((a, b) => b.score - a.score || a.index - b.index).slice(0, k);
      };
      for (const k of [1, 5, 40, rows, rows + 50]) {
        const results = searchTopK(matrix, queries, k);
        assert.is(results.length, queries.length);
        // Same float64 sums in the same order on both sides, so scores are compared exactly.
        queries.forEach((q, qi) => assert.equal(results[qi], bruteForce(q, k), `k ${k}, query ${qi}`));
      }
      const zero = searchTopK(matrix, [new Float32Array(dim)], 5)[0];
      assert.equal(
        zero.map((h) => h.index),
        [0, 1, 2, 3, 4],
      );
      assert.equal(searchTopK(matrix, [], 3), []);
    }));

test('VectorMatrix refuses wrong sizes; normalisation is x / max(|x|, 1e-12)', () => {
  const m = new VectorMatrix(1, 2);
  assert.throws(() => m.append([new Float32Array(3)]), /3 dims/);
  m.append([Float32Array.of(3, 4)]);
  assert.throws(() => m.append([Float32Array.of(1, 0)]), /more than 1/);
  assert.equal(
    [...m.data].map((x) => Math.round(x * 1e6) / 1e6),
    [0.6, 0.8],
  );
  assert.equal([...normalizeInPlace(new Float32Array(2))], [0, 0]);
});

test('BM25 equals the formula computed directly, and ranks the matching document first', () => {
  const docs = ['the cat sat on the mat', 'the dog sat', 'cats and dogs', 'a mat is a mat'].map(whitespaceWords);
  const index = new Bm25Index(docs, { k1: 1.2, b: 0.75 });
  const query = ['mat', 'sat', 'mat'];
  const avgdl = docs.reduce((n, d) => n + d.length, 0) / docs.length;
  const direct = docs.map((d) =>
    query.reduce((sum, t) => {
      const df = docs.filter((x) => x.includes(t)).length;
      const tf = d.filter((x) => x === t).length;
      const idf = Math.log(1 + (docs.length - df + 0.5) / (df + 0.5));
      return sum + (idf * tf * 2.2) / (tf + 1.2 * (0.25 + (0.75 * d.length) / avgdl));
    }, 0),
  );
  const scores = index.scores(query);
  docs.forEach((_, i) => assert.ok(Math.abs((scores.get(i) ?? 0) - direct[i]) < 1e-12, `doc ${i}: float64`));
  const hits = index.search(query, 10);
  assert.equal(
    hits.map((h) => h.index),
    [3, 0, 1],
  ); // doc 2 shares no term and is not returned
  assert.equal(new Bm25Index<string>([]).search(['x'], 3), []);
});

test.run();
