/**
 * Checkpoint integrity: every checkpoint carries checksums.json; `--resume` checks the newest one and, when a
 * file is corrupt, truncated or missing, says so and resumes from the newest intact one — ending with the very
 * weights of the run that was never damaged. A finished run can be trained further with `--resume --max_steps N`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, cpSync, openSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '@kotune/engine';
import { MANIFEST_FILE, readManifest, readSafetensors } from '@kotune/weights';
import { checkpointProblems, loadTrainConfig, train, type TrainConfig } from '../src/index.ts';
import { quiet, tinyConfig, toyDataDir, writeConfig } from './support/tiny-run.ts';

await initBackend({ backend: 'wasm', log: null });

const dir = toyDataDir('integrity', 16);
// 6 steps, a checkpoint every 2 (and dropout, so that a resume must restore the generator to match).
const config = loadTrainConfig(
  writeConfig(dir, 'run.json', tinyConfig('reranker', { max_steps: 6, save_steps: 2, dropout: 0.1, output_dir: 'whole' })),
);
await train(config, quiet);
const finalWeights = (await readSafetensors(join(config.output_dir, 'model.safetensors'))).tensors;

/** A copy of the finished run without its final export (so that the resume writes it again), its checkpoint-6 damaged by `damage`. */
function damagedCopy(name: string, damage: (checkpoint: string) => void): TrainConfig {
  const out = join(dir, name);
  cpSync(config.output_dir, out, { recursive: true });
  for (const file of readdirSync(out))
    if (!file.startsWith('checkpoint-') && file !== 'metrics.jsonl') rmSync(join(out, file), { recursive: true });
  damage(join(out, 'checkpoint-6'));
  return { ...config, output_dir: out, resume_from_checkpoint: true };
}

/** Resumes `run`, returning what it printed; its final weights must be the undamaged run's, bit for bit. */
async function resumeAndCompare(run: TrainConfig): Promise<string[]> {
  const lines: string[] = [];
  const result = await train(run, { ...quiet, print: (line) => lines.push(line) });
  assert.is(result.globalStep, 6);
  const weights = (await readSafetensors(join(run.output_dir, 'model.safetensors'))).tensors;
  for (const [name, tensor] of finalWeights) assert.equal(weights.get(name)!.data, tensor.data, name);
  return lines;
}

test('each checkpoint lists its files with their sizes and SHA-256', () => {
  const checkpoint = join(config.output_dir, 'checkpoint-4');
  const listed = Object.keys(readManifest(checkpoint)!.files).sort();
  assert.equal(
    listed,
    readdirSync(checkpoint)
      .filter((f) => f !== MANIFEST_FILE)
      .sort(),
  );
  assert.ok(listed.includes('optimizer.safetensors') && listed.includes('trainer_state.json') && listed.includes('model.safetensors'));
});

test('corrupt: 1,000 overwritten bytes in model.safetensors -> a warning naming it, and the resume starts at checkpoint-4', async () => {
  const run = damagedCopy('corrupt', (checkpoint) => {
    const fd = openSync(join(checkpoint, 'model.safetensors'), 'r+');
    writeSync(fd, Buffer.alloc(1000, 0x55), 0, 1000, 10_000);
    closeSync(fd);
  });
  const lines = await resumeAndCompare(run);
  const c6 = join(run.output_dir, 'checkpoint-6');
  const c4 = join(run.output_dir, 'checkpoint-4');
  assert.ok(
    lines.includes(`warning: skipping ${c6}: model.safetensors does not match its SHA-256 in checksums.json (corrupt or changed)`),
    lines.join('\n'),
  );
  assert.ok(lines.includes(`resuming from ${c4}, the newest intact checkpoint`));
  assert.ok(lines.includes(`resumed from ${c4} at step 4`));
});

test('truncated: optimizer.safetensors cut short -> named with both sizes', async () => {
  let size = 0;
  const run = damagedCopy('truncated', (checkpoint) => {
    size = statSync(join(checkpoint, 'optimizer.safetensors')).size;
    truncateSync(join(checkpoint, 'optimizer.safetensors'), 4096);
  });
  const lines = await resumeAndCompare(run);
  assert.ok(
    lines.includes(
      `warning: skipping ${join(run.output_dir, 'checkpoint-6')}: optimizer.safetensors has 4096 bytes, checksums.json says ${size} (truncated)`,
    ),
    lines.join('\n'),
  );
});

test('missing: optimizer.safetensors deleted -> named (no raw ENOENT)', async () => {
  const run = damagedCopy('missing', (checkpoint) => rmSync(join(checkpoint, 'optimizer.safetensors')));
  const lines = await resumeAndCompare(run);
  assert.ok(
    lines.includes(`warning: skipping ${join(run.output_dir, 'checkpoint-6')}: optimizer.safetensors is missing`),
    lines.join('\n'),
  );
});

test('--resume DIR of a damaged checkpoint is refused; with no intact checkpoint at all, --resume says so', async () => {
  const truncatedState = '{"version": 1, "global_';
  const run = damagedCopy('named', (checkpoint) => writeFileSync(join(checkpoint, 'trainer_state.json'), truncatedState));
  const c6 = join(run.output_dir, 'checkpoint-6');
  const problem = `trainer_state.json has ${truncatedState.length} bytes, checksums.json says ${readManifest(c6)!.files['trainer_state.json']!.size} (truncated)`;
  assert.equal((await checkpointProblems(c6)).problems, [problem]);
  const named = await train({ ...run, resume_from_checkpoint: c6 }, quiet).then(
    () => null,
    (e: Error) => e.message,
  );
  assert.is(named, `--resume ${c6}: the checkpoint is damaged: ${problem}`);
  for (const step of [2, 4]) rmSync(join(run.output_dir, `checkpoint-${step}`, 'model.safetensors'));
  const none = await train(run, quiet).then(
    () => null,
    (e: Error) => e.message,
  );
  assert.is(none, `--resume: no intact checkpoint in ${run.output_dir} (3 damaged, named above); start afresh with --overwrite_output_dir`);
});

test('a finished run: --resume alone says how to go on; --resume --max_steps 8 trains two more steps; fewer steps than done is refused', async () => {
  const out = join(dir, 'extend');
  cpSync(config.output_dir, out, { recursive: true });
  const finished = { ...config, output_dir: out, resume_from_checkpoint: true as const };
  const lines: string[] = [];
  const again = await train(finished, { ...quiet, print: (line) => lines.push(line) });
  assert.is(again.globalStep, 6);
  assert.ok(
    lines.includes(
      `${join(out, 'checkpoint-6')} is the run's last step (6): nothing to train. To train further, resume with max_steps ` +
        '(or num_train_epochs) beyond it, e.g. --resume --max_steps 12',
    ),
    lines.join('\n'),
  );

  lines.length = 0;
  const extended = await train({ ...finished, max_steps: 8 }, { ...quiet, print: (line) => lines.push(line) });
  assert.is(extended.globalStep, 8);
  assert.ok(
    lines.includes(
      'the run is now 8 steps (warmup 0) instead of 6 (warmup 0): the linear schedule of the steps after 6 follows the new length',
    ),
    lines.join('\n'),
  );
  assert.ok(readdirSync(out).includes('checkpoint-8'), 'the last step is checkpointed, as HF saves at the end');

  const shorter = await train({ ...finished, max_steps: 4 }, quiet).then(
    () => null,
    (e: Error) => e.message,
  );
  assert.is(
    shorter,
    `cannot resume from ${join(out, 'checkpoint-8')}: it is at step 8, past the 4 steps this run is set to; give max_steps (or num_train_epochs) beyond 8`,
  );
});

test.run();
