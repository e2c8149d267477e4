import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../src/commands/metrics.ts';

const dir = mkdtempSync(join(tmpdir(), 'kotune-metrics-cli-'));

async function capture(fn: () => Promise<void>): Promise<{ out: string; err: string }> {
  const log = console.log;
  const error = console.error;
  let out = '';
  let err = '';
  console.log = (...a: unknown[]) => {
    out += `${a.join(' ')}\n`;
  };
  console.error = (...a: unknown[]) => {
    err += `${a.join(' ')}\n`;
  };
  try {
    await fn();
  } finally {
    console.log = log;
    console.error = error;
  }
  return { out, err };
}

test('prints one JSON object with every metric; a qrels query missing from the run scores 0 and is named', async () => {
  const qrels = join(dir, 'qrels.txt');
  const runFile = join(dir, 'run.txt');
  const output = join(dir, 'out.json');
  writeFileSync(qrels, 'q1 0 d1 1\nq2 0 d3 1\nq3 0 d5 0\n');
  writeFileSync(runFile, 'q1 Q0 d2 1 0.9 t\nq1 Q0 d1 2 0.8 t\nq9 Q0 d1 1 1 t\n');
  const { out, err } = await capture(() => run(['--qrels', qrels, '--run', runFile, '--output', output]));
  const lines = out.trim().split('\n');
  assert.is(lines.length, 1);
  const result = JSON.parse(lines[0]);
  for (const key of ['accuracy@1', 'precision@3', 'recall@5', 'f1@5', 'mrr@10', 'ndcg@10', 'map@100', 'f1@10', 'accuracy@10'])
    assert.type(result[key], 'number', key);
  assert.is(result['mrr@10'], 0.25); // q1: 1/2, q2 (missing): 0; q3 has no relevant doc
  assert.is(result.queries, 2);
  assert.is(result.queries_missing_from_run, 1);
  assert.is(result.queries_without_relevant_skipped, 1);
  assert.match(result.missing_queries_policy, /scored 0/);
  assert.match(err, /score 0: q2/);
  assert.equal(JSON.parse(readFileSync(output, 'utf8')), result);
});

test('a malformed run line is reported with file and line', async () => {
  const qrels = join(dir, 'q2.txt');
  const runFile = join(dir, 'r2.txt');
  writeFileSync(qrels, 'q1 0 d1 1\n');
  writeFileSync(runFile, 'q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.4\n');
  await run(['--qrels', qrels, '--run', runFile]).then(
    () => assert.unreachable(),
    (e: Error) => assert.is(e.message, `${runFile}:2: expected 6 fields "qid Q0 docid rank score tag", got 5`),
  );
});

test.run();
