import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../src/commands/mine.ts';

const root = new URL('../../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'kotune-mine-'));
const source = readFileSync(join(root, 'examples/data/chatbot-eval.jsonl'), 'utf8').trim().split('\n').slice(0, 60);

async function quiet<T>(fn: () => Promise<T>): Promise<{ out: string }> {
  const log = console.log;
  let out = '';
  console.log = (...a: unknown[]) => {
    out += `${a.join(' ')}\n`;
  };
  try {
    await fn();
  } finally {
    console.log = log;
  }
  return { out };
}

test('BM25 over pieces: every line gets N negatives, none a positive or the query, other fields kept, seeded', async () => {
  const input = join(dir, 'in.jsonl');
  writeFileSync(input, source.map((l, i) => JSON.stringify({ ...JSON.parse(l), id: i })).join('\n'));
  const args = (out: string, seed = '1') => [
    '--input',
    input,
    '--output',
    out,
    '--tokenizer',
    join(root, 'test/fixtures/xlmr-tiny'),
    '--range-for-sampling',
    '2-40',
    '--negative-number',
    '7',
    '--seed',
    seed,
    '--quiet',
  ];
  const { out } = await quiet(() => run(args(join(dir, 'a.jsonl'))));
  assert.match(out, /\| first stage \| BM25 over tokenizer pieces/);
  const fromRange = Number(/\| from the range \| (\d+) \|/.exec(out)![1]);
  const padded = Number(/\| random padding \| (\d+) \|/.exec(out)![1]);
  assert.is(fromRange + padded, 60 * 7);
  assert.ok(fromRange > padded, `most negatives come from the BM25 ranks (${fromRange} vs ${padded} padded)`);
  await quiet(() => run(args(join(dir, 'b.jsonl'))));
  await quiet(() => run(args(join(dir, 'c.jsonl'), '2')));
  const a = readFileSync(join(dir, 'a.jsonl'), 'utf8');
  assert.is(a, readFileSync(join(dir, 'b.jsonl'), 'utf8'), 'same seed, same file');
  assert.is.not(a, readFileSync(join(dir, 'c.jsonl'), 'utf8'), 'another seed, other negatives');
  const lines = a
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.is(lines.length, 60);
  const pool = new Set(
    source.flatMap((l) => {
      const x = JSON.parse(l);
      return [...x.pos, ...x.neg];
    }),
  );
  lines.forEach((line, i) => {
    assert.is(line.id, i);
    assert.is(line.neg.length, 7);
    assert.is(new Set(line.neg).size, 7);
    for (const n of line.neg) {
      assert.ok(pool.has(n));
      assert.not.ok(line.pos.includes(n));
      assert.is.not(n, line.query);
    }
  });
});

test('usage errors', async () => {
  const input = join(dir, 'in.jsonl');
  await run(['--input', input, '--output', join(dir, 'x.jsonl')]).then(
    () => assert.unreachable(),
    (e: Error) => assert.match(e.message, /needs --tokenizer/),
  );
  await run(['--input', input, '--output', join(dir, 'x.jsonl'), '--bm25-terms', 'words', '--range-for-sampling', '9']).then(
    () => assert.unreachable(),
    (e: Error) => assert.match(e.message, /10-210/),
  );
});

test.run();
