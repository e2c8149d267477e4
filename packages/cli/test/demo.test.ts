/**
 * `kotune demo` end to end in a child process (as `pnpm demo` runs it), cut to a few optimizer steps in a
 * temporary folder: the export loads, the log, the plots and the before/after table are there. Whether the
 * score rises is measured by the full run (minutes), not here.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initBackend } from '@kotune/engine';
import { PLOT_FILES, readMetricsLog } from '@kotune/trainer';
import { Reranker } from '@kotune/xlm-roberta';

const REPO = resolve(import.meta.dirname, '../../..');
const STEPS = 3;

function kotune(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'packages/cli/src/main.ts', ...args], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 300_000,
  });
}

const dir = mkdtempSync(join(tmpdir(), 'kotune-demo-'));
const out = join(dir, 'run');

test(`kotune demo --max-steps ${STEPS}: export, metrics.jsonl, plots and a before/after table`, async () => {
  const run = kotune(['demo', '--output-dir', out, '--max-steps', String(STEPS), '--backend', 'wasm']);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stderr, /^backend: /m);
  assert.match(run.stderr, /model: XLM-RoBERTa reranker from a random init/);

  // The printed table: header, separator, then exactly the two rows.
  const rows = run.stdout.split('\n').filter((line) => line.startsWith('| '));
  assert.is(rows.length, 4, run.stdout);
  assert.match(rows[0]!, '| model | MRR@1 | MRR@3 | MRR@5 | MRR@10 | NDCG@1 |');
  assert.match(rows[2]!, /^\| before \(random init\) \| (0|1)\.\d{4} \|/);
  assert.match(rows[3]!, new RegExp(`^\\| after \\(${STEPS} steps\\) \\| (0|1)\\.\\d{4} \\|`));
  assert.is(readFileSync(join(out, 'eval.md'), 'utf8'), `${rows.join('\n')}\n`);

  const summary = JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8'));
  assert.is(summary.queries, 200);
  assert.is(summary.steps, STEPS);
  assert.equal(Object.keys(summary.systems), ['before (random init)', `after (${STEPS} steps)`]);
  for (const metrics of Object.values(summary.systems) as Record<string, number>[]) {
    assert.ok(metrics['mrr@10']! > 0 && metrics['mrr@10']! <= 1, `mrr@10 ${metrics['mrr@10']}`);
  }

  const log = readMetricsLog(join(out, 'metrics.jsonl'));
  assert.ok(
    log.some((line) => line.step === STEPS && 'loss' in line),
    'a training line for the last step',
  );
  const lastEval = log.find((line) => line.step === STEPS && 'eval' in line);
  assert.ok(lastEval, 'an eval line for the last step');
  for (const file of [...Object.values(PLOT_FILES), 'eval.png']) assert.ok(existsSync(join(out, file)), file);

  await initBackend({ backend: 'wasm', log: null });
  const reranker = await Reranker.load(out, { log: null });
  try {
    const [score] = await reranker.score([['한 남자가 기타를 연주하고 있다.', '남자가 기타를 치고 있다.']]);
    assert.ok(Number.isFinite(score), `score ${score}`);
  } finally {
    reranker.dispose();
  }
});

test('kotune demo refuses a --output-dir that is not empty, and deletes nothing', () => {
  writeFileSync(join(dir, 'keep.txt'), 'mine');
  const run = kotune(['demo', '--output-dir', dir]);
  assert.is(run.status, 2);
  assert.match(run.stderr, `kotune: demo: ${dir} is not empty; give an empty or new --output-dir`);
  assert.is(readFileSync(join(dir, 'keep.txt'), 'utf8'), 'mine');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
