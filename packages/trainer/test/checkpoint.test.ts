import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { MANIFEST_FILE } from '@kotune/weights';
import {
  OPTIMIZER_FILE,
  TRAINER_STATE_FILE,
  latestCheckpoint,
  listCheckpoints,
  readCheckpoint,
  removeStaleTemporaries,
  rotateCheckpoints,
  saveCheckpoint,
  type TrainerState,
} from '../src/index.ts';

function state(step: number): TrainerState {
  return {
    version: 1,
    global_step: step,
    epoch: step / 4,
    scheduler_step: step,
    rng: [1, 2, 3, step],
    sampler: { version: 1, settings: {} as never, epoch: 0, batchesInEpoch: step, linesConsumed: step * 2, rng: [5, 6, 7, 8], dataHash: 9 },
    optimizer: { step },
    best_metric: null,
    best_model_checkpoint: null,
    run: { task: 'reranker' },
  };
}

async function save(out: string, step: number, saveModel = async (d: string) => writeFileSync(join(d, 'model.safetensors'), 'w')) {
  const exp_avg = new Float32Array([step, 0.5, -1]);
  return saveCheckpoint(out, {
    state: state(step),
    optimizerTensors: new Map([['w.exp_avg', { dtype: 'F32', shape: [3], data: exp_avg }]]),
    saveModel,
  });
}

test('a checkpoint holds the model export, optimizer tensors and trainer state, and reads back', async () => {
  const out = mkdtempSync(join(tmpdir(), 'kotune-ckpt-'));
  const path = await save(out, 3);
  assert.is(basename(path), 'checkpoint-3');
  assert.equal(readdirSync(path).sort(), [MANIFEST_FILE, TRAINER_STATE_FILE, 'model.safetensors', OPTIMIZER_FILE].sort());
  const { state: read, optimizerTensors } = await readCheckpoint(path);
  assert.equal(read, state(3));
  assert.equal([...(optimizerTensors.get('w.exp_avg')!.data as Float32Array)], [3, 0.5, -1], 'float32 round trip is exact');
  assert.equal(readdirSync(out), ['checkpoint-3'], 'no temporary folder left');
});

test('a save that dies half-way leaves no checkpoint; the next run clears its temporary folder', async () => {
  const out = mkdtempSync(join(tmpdir(), 'kotune-ckpt-'));
  await save(out, 2);
  await save(out, 4, async () => {
    throw new Error('disk full');
  }).then(
    () => assert.unreachable('should throw'),
    (e: Error) => assert.match(e.message, /disk full/),
  );
  assert.equal(
    listCheckpoints(out).map((c) => c.step),
    [2],
    'the half-written checkpoint-4 does not count',
  );
  assert.is(latestCheckpoint(out), join(out, 'checkpoint-2'));
  assert.is(removeStaleTemporaries(out).length, 1);
  assert.equal(readdirSync(out), ['checkpoint-2']);
  // A folder named like a checkpoint but without trainer_state.json (copied by hand, cut short) is not complete.
  await save(out, 6);
  const partial = join(out, 'checkpoint-8');
  mkdirSync(partial);
  assert.is(latestCheckpoint(out), join(out, 'checkpoint-6'));
  await readCheckpoint(partial).then(
    () => assert.unreachable('should throw'),
    (e: Error) => assert.match(e.message, /not a complete checkpoint/),
  );
});

test('save_total_limit keeps the newest N and the best one; re-saving a step replaces it', async () => {
  const out = mkdtempSync(join(tmpdir(), 'kotune-ckpt-'));
  for (const step of [10, 20, 30, 40, 50]) await save(out, step);
  const removed = rotateCheckpoints(out, 2, join(out, 'checkpoint-20'));
  assert.equal(
    removed.map((p) => basename(p)),
    ['checkpoint-10', 'checkpoint-30'],
  );
  assert.equal(
    listCheckpoints(out).map((c) => c.step),
    [20, 40, 50],
  );
  assert.equal(rotateCheckpoints(out, null, null), [], 'no limit: all kept');
  await save(out, 50, async (d) => writeFileSync(join(d, 'model.safetensors'), 'second'));
  assert.is(readFileSync(join(out, 'checkpoint-50', 'model.safetensors'), 'utf8'), 'second');
  assert.not.ok(
    readdirSync(out).some((e) => e.startsWith('.')),
    'no leftovers of the replaced one',
  );
  assert.ok(existsSync(join(out, 'checkpoint-50', TRAINER_STATE_FILE)));
});

test.run();
