import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@kotune/data';
import {
  corpusTexts,
  EmbeddingCache,
  encodeCorpusCached,
  encodeIntoMatrix,
  readCorpusIds,
  readEvalQueries,
  VectorMatrix,
  type EncodeTexts,
} from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kotune-cache-'));

/** A deterministic fake embedder (character-code histogram) that counts the texts it is asked to encode. */
function countingEncoder() {
  const calls = { texts: 0, batches: 0 };
  const encode: EncodeTexts = async (texts) => {
    calls.texts += texts.length;
    calls.batches += 1;
    return texts.map((t) => {
      const v = new Float32Array(8);
      for (const ch of t) v[ch.charCodeAt(0) % 8] += 1;
      return v;
    });
  };
  return { encode, calls };
}

test('encodeIntoMatrix fills the matrix in chunks', async () => {
  const { encode, calls } = countingEncoder();
  const matrix = await encodeIntoMatrix(['ab', 'cd', 'ef', 'gh', 'ij'], 5, encode, { chunkSize: 2, progress: false });
  assert.is(calls.batches, 3);
  assert.is(matrix.count, 5);
  await encodeIntoMatrix(['a'], 2, encode, { progress: false }).then(
    () => assert.unreachable(),
    (e: Error) => assert.match(e.message, /expected 2 texts/),
  );
});

test('the corpus cache is hit on a re-run and missed when the file, the model or the options change', async () => {
  const corpus = join(dir, 'corpus.jsonl');
  writeFileSync(corpus, ['{"id": "d1", "text": "가나다"}', '{"id": 2, "text": "라마바"}', '{"id": "d3", "text": "사아자"}'].join('\n'));
  const ids = await readCorpusIds(corpus);
  assert.equal(ids, ['d1', '2', 'd3']);
  const cache = new EmbeddingCache(join(dir, 'cache'));
  const { encode, calls } = countingEncoder();
  const run = (model: string, options: Record<string, unknown> = { prefix: '' }) =>
    encodeCorpusCached({
      file: corpus,
      rows: ids.length,
      texts: () => corpusTexts(corpus),
      encode,
      model,
      options,
      cache,
      progress: false,
    });
  const first = await run('m1');
  assert.is(first.cached, false);
  assert.is(calls.texts, 3);
  const second = await run('m1');
  assert.is(second.cached, true);
  assert.is(calls.texts, 3, 'no encoding on a cache hit');
  assert.equal([...second.matrix.data], [...first.matrix.data]);
  await run('m2');
  assert.is(calls.texts, 6, 'another model');
  await run('m1', { prefix: 'passage: ' });
  assert.is(calls.texts, 9, 'other options');
  writeFileSync(corpus, ['{"id": "d1", "text": "가나다"}', '{"id": 2, "text": "라마바"}', '{"id": "d3", "text": "사아차"}'].join('\n'));
  const changed = await run('m1');
  assert.is(changed.cached, false);
  assert.is(calls.texts, 12, 'same size, other content');
  assert.not.ok(readdirSync(join(dir, 'cache')).some((f) => f.includes('.tmp-')));
});

test('a cache entry reads back bit-identical (NaN payloads, -0, subnormals included); a torn file is a miss', () => {
  const rng = new Rng(5);
  const rows = 1000;
  const dim = 24;
  // Arbitrary bit patterns, so that any conversion through numbers on the way would show.
  const bits = Uint32Array.from({ length: rows * dim }, () => rng.nextUint32());
  bits.set([0x80000000, 0x00000001, 0x7fc01234, 0xffbfffff, 0x7f800000], 0);
  const matrix = new VectorMatrix(rows, dim, new Float32Array(bits.buffer));
  const cache = new EmbeddingCache(join(dir, 'bits'));
  cache.save('k', matrix, { model: 'm', corpusSha256: 'x', options: {} });
  const loaded = cache.load('k');
  assert.ok(loaded);
  assert.is(loaded.rows, rows);
  assert.is(loaded.dim, dim);
  assert.is(loaded.count, rows);
  assert.ok(Buffer.from(loaded.data.buffer, loaded.data.byteOffset, loaded.data.byteLength).equals(Buffer.from(bits.buffer)));
  assert.is(loaded.data.byteLength, 4 * rows * dim);
  truncateSync(join(dir, 'bits', 'k.f32'), 4 * rows * dim - 4);
  assert.is(cache.load('k'), null);
  assert.is(cache.load('absent'), null);
});

test('corpus and query lines are checked', async () => {
  const corpus = join(dir, 'dup.jsonl');
  writeFileSync(corpus, '{"id": "a", "text": "x"}\n\n{"id": "a", "text": "y"}\n');
  await readCorpusIds(corpus).then(
    () => assert.unreachable(),
    (e: Error) => assert.is(e.message, `${corpus}:3: id 'a' already used on line 1`),
  );
  const queries = join(dir, 'q.jsonl');
  writeFileSync(queries, '{"query": "x", "relevant": ["a"]}\n{"query": "y", "relevant": ["zz"]}\n');
  await readEvalQueries(queries, new Set(['a'])).then(
    () => assert.unreachable(),
    (e: Error) => assert.is(e.message, `${queries}:2: relevant id 'zz' is not in the corpus`),
  );
});

test.run();
