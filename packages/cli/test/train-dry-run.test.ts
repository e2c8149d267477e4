/** `kotune train --dry-run`: the printed plan, and bad data and config mistakes as the user sees them. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunProblemsError } from '@kotune/trainer';
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
  assert.match(out, /dry run: the config, model, output_dir and data are valid; no model loaded, nothing written/);
  assert.not.ok(readdirSync(dir).includes('out'), 'a dry run creates no output folder');
});

test('a bad training line stops the dry run with path:line: field; skip_bad_lines counts it instead', async () => {
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, `${lines[0]}\n\n{"query": "q", "pos": "not a list"}\n${lines[1]}\n`);
  await run(['--config', join(dir, 'run.json'), '--dry-run', '--train_data', bad]).then(
    () => assert.unreachable('should fail'),
    (e: Error) => assert.is(e.message, `${bad}:3: pos is a string, expected an array of strings`),
  );
  const out = await captured(['--config', join(dir, 'run.json'), '--dry-run', '--train_data', bad, '--skip_bad_lines']);
  assert.match(out, /2 lines in .*bad\.jsonl \(skipped 1 bad line: 1 pos not an array/);
});

/** The problems a dry run reports (a RunProblemsError), and what it printed. */
async function problemsOf(argv: string[]): Promise<{ problems: string[]; out: string }> {
  let out = '';
  const original = console.log;
  console.log = (...args: unknown[]) => (out += `${args.join(' ')}\n`);
  try {
    await run(argv);
  } catch (error) {
    assert.instance(error, RunProblemsError);
    return { problems: (error as RunProblemsError).problems, out };
  } finally {
    console.log = original;
  }
  return { problems: [], out };
}

test('--dry-run reports every problem at once: the model, output_dir, each bad line', async () => {
  const taken = join(dir, 'taken');
  writeFileSync(taken, 'a file where the run folder should be');
  const bad = join(dir, 'bad-lines.jsonl');
  writeFileSync(
    bad,
    Buffer.concat([
      Buffer.from(`${lines[0]}\n{"query": "q", "pos": ["caf`),
      Buffer.from([0xe9]),
      Buffer.from(`"]}\n${lines[1]}\n`),
      Buffer.from('{"query": "q", "pos": ["a"], "neg": ["b", ""]}\n'),
    ]),
  );
  const argv = [
    '--config',
    join(dir, 'run.json'),
    '--dry-run',
    '--model_name_or_path',
    './no-such-model',
    '--output_dir',
    taken,
    '--train_data',
    bad,
  ];
  const { problems, out } = await problemsOf(argv);
  assert.equal(problems, [
    `model_name_or_path ${join(process.cwd(), 'no-such-model')}: no such folder (and not a Hugging Face repo id, org/name)`,
    `output_dir ${taken} is a file, not a folder`,
    `${bad}:2: invalid UTF-8 (the file must be UTF-8 text)`,
    `${bad}:4: neg[1] is an empty string`,
  ]);
  assert.not.match(out, 'dry run:');
  await run(argv).catch((e: Error) => assert.is(e.message, `4 problems:\n  ${problems.join('\n  ')}`));
  // skip_bad_lines counts the lines instead.
  const skipping = await problemsOf([...argv, '--skip_bad_lines']);
  assert.equal(skipping.problems, problems.slice(0, 2));
  assert.match(skipping.out, /2 lines in .*bad-lines\.jsonl \(skipped 2 bad lines: 1 empty neg passage, 1 invalid UTF-8/);
});

test('--dry-run resolves the model: its positions against the lengths; a hub id in the cache or to download (a problem offline)', async () => {
  const fixture = join(import.meta.dirname, '../../../test/fixtures/xlmr-tiny/reranker');
  const { problems } = await problemsOf(['--config', join(dir, 'run.json'), '--dry-run', '--model_name_or_path', fixture]);
  assert.equal(problems, [
    `model_name_or_path ${fixture}: its max_position_embeddings 66 leaves 64 positions for tokens, but a training pair ` +
      'holds query_max_len 32 + passage_max_len 128 = 160 tokens; lower the lengths',
  ]);
  const fits = await problemsOf([
    '--config',
    join(dir, 'run.json'),
    '--dry-run',
    '--model_name_or_path',
    fixture,
    '--passage_max_len',
    '30',
  ]);
  assert.equal(fits.problems, []);
  assert.match(fits.out, 'dry run: the config, model, output_dir and data are valid');

  const emptyCache = mkdtempSync(join(tmpdir(), 'kotune-empty-cache-'));
  const saved = { cache: process.env.HF_HUB_CACHE, offline: process.env.HF_HUB_OFFLINE };
  process.env.HF_HUB_CACHE = emptyCache;
  try {
    const online = await problemsOf(['--config', join(dir, 'run.json'), '--dry-run']);
    assert.equal(online.problems, []);
    assert.match(
      online.out,
      `note: model_name_or_path BAAI/bge-reranker-large: not a folder here, nor complete in the Hugging Face cache ${emptyCache}; the run will download it`,
    );
    process.env.HF_HUB_OFFLINE = '1';
    const offline = await problemsOf(['--config', join(dir, 'run.json'), '--dry-run']);
    assert.match(
      offline.problems.join('\n'),
      /^model_name_or_path: BAAI\/bge-reranker-large \(revision main\) is not a local folder nor complete in the Hugging Face cache, and downloads are off \(HF_HUB_OFFLINE\)/,
    );
  } finally {
    for (const [key, value] of [
      ['HF_HUB_CACHE', saved.cache],
      ['HF_HUB_OFFLINE', saved.offline],
    ] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
});

test('--dry-run of a fresh model checks the tokenizer folder; of a resume, that there is a checkpoint', async () => {
  const fresh = await problemsOf([
    '--config',
    join(dir, 'run.json'),
    '--dry-run',
    '--model_name_or_path',
    'null',
    '--model_config',
    '{"hidden_size": 64, "num_attention_heads": 4}',
    '--tokenizer_name_or_path',
    join(dir, 'eval.jsonl'),
  ]);
  assert.equal(fresh.problems, [`tokenizer_name_or_path ${join(dir, 'eval.jsonl')} is a file, not a model folder`]);
  const resume = await problemsOf(['--config', join(dir, 'run.json'), '--dry-run', '--resume', '--output_dir', join(dir, 'never-trained')]);
  assert.equal(resume.problems, [`--resume: no checkpoint (checkpoint-<step>/) in ${join(dir, 'never-trained')}`]);
});

test('config mistakes are usage errors (exit 2) naming the key', async () => {
  for (const [argv, pattern] of [
    [
      ['--config', join(dir, 'run.json'), '--dry-run', '--learning_rat', '1'],
      /unknown key --learning_rat \(did you mean --learning_rate\?\)/,
    ],
    [['--config', join(dir, 'run.json'), '--dry-run', '--loss', 'mnrl'], /loss mnrl is for embedders/],
    [['--config'], /--config needs a file/],
  ] as [string[], RegExp][]) {
    await run(argv).then(
      () => assert.unreachable('should fail'),
      (e: Error) => {
        assert.instance(e, CliError);
        assert.match(e.message, pattern);
      },
    );
  }
});

test.run();
