/** `kotune train --dry-run`: the printed plan, and bad data and config mistakes as the user sees them. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeDryRunFixture } from '../../trainer/test/dry-run-fixture.ts';
import { run } from '../src/commands/train.ts';
import { CliError } from '../src/errors.ts';

const { dir, lines } = writeDryRunFixture('kotune-train-dry-');

async function captured(argv: string[]): Promise<string> {
  const original = console.log;
  let out = '';
  console.log = (...args: unknown[]) => (out += `${args.join(' ')}\n`);
  try {
    await run(argv);
  } finally {
    console.log = original;
  }
  return out;
}

test('kotune train --dry-run prints the plan, loads no model and writes nothing', async () => {
  const out = await captured(['--config', join(dir, 'run.json'), '--dry-run', '--output_dir', join(dir, 'out'), '--learning_rate', '1e-5']);
  assert.match(out, /train data\s+23 lines in .*train\.jsonl/);
  assert.match(out, /eval data\s+5 queries/);
  assert.match(out, /loss\s+group_ce/);
  assert.match(out, /batch\s+2 queries x 3 passages, accumulation 3 -> effective batch 6 queries/);
  assert.match(out, /steps\s+8 \(12 batches = 4 steps per epoch, 2 epochs\)/);
  assert.match(out, /schedule\s+linear, peak lr 0\.00001, warmup 1 steps/);
  assert.match(out, /dry run: config and data are valid; no model loaded/);
  assert.not.ok(readdirSync(dir).includes('out'), 'a dry run creates no output folder');
});

test('a bad training line stops the dry run with path:line: field; skip_bad_lines counts it instead', async () => {
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, `${lines[0]}\n\n{"query": "q", "pos": "not a list"}\n${lines[1]}\n`);
  await run(['--config', join(dir, 'run.json'), '--dry-run', '--train_data', bad]).then(
    () => assert.unreachable('should fail'),
    (e: Error) => assert.is(e.message, `${bad}:3: pos is a string, expected an array of strings`));
  const out = await captured(['--config', join(dir, 'run.json'), '--dry-run', '--train_data', bad, '--skip_bad_lines']);
  assert.match(out, /2 lines in .*bad\.jsonl \(skipped 1 bad line: 1 pos not an array/);
});

test('config mistakes are usage errors (exit 2) naming the key', async () => {
  for (const [argv, pattern] of [
    [['--config', join(dir, 'run.json'), '--dry-run', '--learning_rat', '1'], /unknown key --learning_rat; valid keys: task, loss/],
    [['--config', join(dir, 'run.json'), '--dry-run', '--loss', 'mnrl'], /loss mnrl is for embedders/],
    [['--config'], /--config needs a file/],
  ] as [string[], RegExp][]) {
    await run(argv).then(() => assert.unreachable('should fail'), (e: Error) => {
      assert.instance(e, CliError);
      assert.match(e.message, pattern);
    });
  }
});

test.run();
