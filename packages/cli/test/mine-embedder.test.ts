/**
 * `kotune mine` with the fixture embedder: the negatives taken from the sampling range must be the pool
 * passages the float64 reference CLS embeddings of the fixture rank there (minus positives and the query).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rankCandidates } from '@kotune/metrics';
import { run } from '../src/commands/mine.ts';

const root = new URL('../../../', import.meta.url).pathname;
const fixtureDir = join(root, 'test/fixtures/xlmr-tiny');
const cases = JSON.parse(readFileSync(join(fixtureDir, 'cases.json'), 'utf8'));
const texts: string[] = cases.tokenization.cases.find((c: { name: string }) => c.name === 'singles').inputs;
const vectors: number[][] = cases.embedder_forward.cls_normalized;
const dir = mkdtempSync(join(tmpdir(), 'kotune-mine-emb-'));

test('negatives in the range follow the reference cosine ranking; the rest is padding', async () => {
  const pool = join(dir, 'pool.jsonl');
  const input = join(dir, 'in.jsonl');
  const output = join(dir, 'out.jsonl');
  writeFileSync(pool, texts.map((text) => JSON.stringify({ text })).join('\n'));
  const posOf = (i: number) => (i + 1) % 8;
  // The fixture's texts include an empty one: no query, nor positive (an empty passage is a bad line).
  const asked = texts.map((_, i) => i).filter((i) => texts[i].trim() !== '' && texts[posOf(i)].trim() !== '');
  writeFileSync(input, asked.map((i) => JSON.stringify({ query: texts[i], pos: [texts[posOf(i)]], neg: [] })).join('\n'));
  const log = console.log;
  let table = '';
  console.log = (...a: unknown[]) => {
    table += `${a.join(' ')}\n`;
  };
  try {
    await run([
      '--input',
      input,
      '--output',
      output,
      '--candidate-pool',
      pool,
      '--embedder',
      join(fixtureDir, 'embedder'),
      '--range-for-sampling',
      '0-4',
      '--negative-number',
      '4',
      '--no-cache',
      '--backend',
      'cpu',
      '--quiet',
    ]);
  } finally {
    console.log = log;
  }
  console.log(table);
  const dot = (a: number[], b: number[]) => a.reduce((s, x, j) => s + x * b[j], 0);
  const lines = readFileSync(output, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.is(lines.length, asked.length);
  asked.forEach((i, n) => {
    // Adjacent reference cosines differ by > 1e-3, far above float32 error, so the ranking is the reference's.
    const ranked = rankCandidates(vectors.map((v, j) => ({ id: j, score: dot(vectors[i], v) })));
    const inRange = ranked
      .slice(0, 4)
      .filter((j) => j !== i && j !== posOf(i))
      .map((j) => texts[j]);
    const neg: string[] = lines[n].neg;
    assert.is(neg.length, 4);
    assert.equal(neg.slice(0, inRange.length), inRange, `query ${i}: the range's passages, in rank order`);
    for (const padding of neg.slice(inRange.length)) {
      assert.not.ok(
        ranked
          .slice(0, 4)
          .map((j) => texts[j])
          .includes(padding),
        'padding comes from outside the range',
      );
      assert.is.not(padding, texts[posOf(i)]);
    }
  });
});

test('without --quiet, encoding and mining draw progress bars on stderr (and --quiet silences them)', async () => {
  const pool = join(dir, 'pool.jsonl');
  const input = join(dir, 'in-progress.jsonl');
  writeFileSync(pool, texts.map((text) => JSON.stringify({ text })).join('\n'));
  writeFileSync(
    input,
    texts
      .slice(0, 3)
      .map((query, i) => JSON.stringify({ query, pos: [texts[i + 5]], neg: [] }))
      .join('\n'),
  );
  const stderr = async (extra: string[]) => {
    const write = process.stderr.write;
    const log = console.log;
    let err = '';
    process.stderr.write = ((chunk: string | Uint8Array) => {
      err += String(chunk);
      return true;
    }) as typeof process.stderr.write;
    console.log = () => {};
    try {
      await run([
        '--input',
        input,
        '--output',
        join(dir, 'out-progress.jsonl'),
        '--candidate-pool',
        pool,
        '--embedder',
        join(fixtureDir, 'embedder'),
        '--range-for-sampling',
        '0-4',
        '--negative-number',
        '2',
        '--no-cache',
        '--backend',
        'cpu',
        ...extra,
      ]);
    } finally {
      process.stderr.write = write;
      console.log = log;
    }
    return err;
  };
  const err = await stderr([]);
  const poolSize = new Set(texts).size;
  assert.match(err, new RegExp(`encoding corpus  \\[#{30}\\]  ${poolSize}/${poolSize}`));
  assert.match(err, /encoding queries  \[#{30}\]  3\/3/);
  assert.match(err, /mining  \[#{30}\]  3\/3/);
  assert.not.match(await stderr(['--quiet']), /\[#/);
});

test.run();
