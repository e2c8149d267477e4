import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '../../..');

function kotune(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'packages/cli/src/main.ts', ...args], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

test('the example recipes pass --dry-run', () => {
  const examples = readdirSync(join(REPO, 'examples'))
    .filter((f) => f.endsWith('.json'))
    .sort();
  assert.equal(examples, ['bge-m3-ko.json', 'bge-reranker-v2-m3-ko.json', 'demo.json', 'ko-reranker.json', 'koe5.json']);
  // Into a fresh folder each: the recipes' own output_dir (checkpoints/<name>) may hold a run on a developer's machine.
  const outputs = mkdtempSync(join(tmpdir(), 'kotune-examples-'));
  for (const file of examples) {
    const out = kotune(['train', '--config', join('examples', file), '--dry-run', '--output_dir', join(outputs, file)]);
    assert.is(out.status, 0, `${file}: ${out.stderr}`);
    assert.match(out.stdout, 'dry run: the config, model, output_dir and data are valid; no model loaded, nothing written');
    assert.match(out.stdout, /steps\s+\d+ \(/);
  }
  assert.equal(readdirSync(outputs), [], 'a dry run writes nothing');
});

test('kotune train: an unknown key fails with a did-you-mean; bad data names path:line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-train-cli-'));
  writeFileSync(join(dir, 'train.jsonl'), '{"query": "q", "pos": ["a"], "neg": ["b"]}\n\n{"query": "q2", "pos": "a"}\n');
  writeFileSync(
    join(dir, 'run.json'),
    JSON.stringify({ task: 'reranker', model_name_or_path: 'x', train_data: 'train.jsonl', lerning_rate: 1 }),
  );
  const unknown = kotune(['train', '--config', join(dir, 'run.json'), '--dry-run']);
  assert.is(unknown.status, 2);
  assert.is(unknown.stderr, `kotune: train: ${join(dir, 'run.json')}: unknown key "lerning_rate" (did you mean "learning_rate"?)\n`);

  writeFileSync(
    join(dir, 'run.json'),
    JSON.stringify({ task: 'reranker', model_name_or_path: 'x', train_data: 'train.jsonl', output_dir: 'out' }),
  );
  const bad = kotune(['train', '--config', join(dir, 'run.json'), '--dry-run']);
  assert.is(bad.status, 1);
  assert.match(bad.stderr, `kotune: ${join(dir, 'train.jsonl')}:3: pos is a string, expected an array of strings`);
});

test.run();
