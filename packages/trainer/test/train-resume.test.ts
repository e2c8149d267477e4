import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '@kotune/engine';
import { readSafetensors } from '@kotune/weights';
import { isEvalLine, loadTrainConfig, NonFiniteLossError, readMetricsLog, train } from '../src/index.ts';
import { quiet, REPO, tinyConfig, toyDataDir, writeConfig } from './support/tiny-run.ts';

await initBackend({ backend: 'wasm', log: null });

function node(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
}

/** metrics.jsonl without `samples_per_second`, the one field that depends on the clock. */
function logWithoutSpeed(outputDir: string): unknown[] {
  return readMetricsLog(join(outputDir, 'metrics.jsonl')).map((line) => {
    if (isEvalLine(line)) return line;
    const { samples_per_second: _, ...rest } = line;
    return rest;
  });
}

test('killed with SIGKILL after checkpoint-4, `kotune train --resume` (with gradient checkpointing) repeats the same steps and ends with bit-identical weights', async () => {
  const dir = toyDataDir('resume', 20);
  // Dropout on and two micro-batches a step across an epoch boundary (10 batches = 5 steps an epoch), so the
  // RNG, the sampler position, the optimizer moments and the schedule must all be restored for equality.
  const raw = tinyConfig('reranker', {
    dropout: 0.1,
    per_device_train_batch_size: 2,
    gradient_accumulation_steps: 2,
    max_steps: 7,
    save_steps: 2,
    warmup_steps: 2,
    weight_decay: 0.01,
    eval_data: 'eval.jsonl',
    eval_steps: 3,
  });
  const whole = await train(loadTrainConfig(writeConfig(dir, 'whole.json', { ...raw, output_dir: 'whole' })), quiet);

  const config = writeConfig(dir, 'broken.json', { ...raw, output_dir: 'broken' });
  const killed = node(['packages/trainer/test/support/kill-at-step.ts', config, '5']);
  assert.is(killed.signal, 'SIGKILL', killed.stderr);
  const broken = join(dir, 'broken');
  assert.ok(existsSync(join(broken, 'checkpoint-4', 'trainer_state.json')));
  assert.not.ok(existsSync(join(broken, 'model.safetensors')), 'no final export from the killed run');

  // The resumed steps recompute every layer in the backward (gradient checkpointing): the same masks and gradients.
  const resumed = node(['packages/cli/src/main.ts', 'train', '--config', config, '--resume', '--gradient_checkpointing']);
  assert.is(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, `resumed from ${join(broken, 'checkpoint-4')} at step 4`);
  // The killed run could not release its lock: the resumed one takes it over, saying so.
  assert.match(
    resumed.stderr,
    new RegExp(`taking over the stale lock ${join(broken, 'kotune.lock')}: its run \\(pid ${killed.pid} on .*\\) is no longer running`),
  );

  // Float32 equality, tolerance 0: the same loss, rate, grad norm and evals at every step, each logged once.
  assert.equal(logWithoutSpeed(broken), logWithoutSpeed(whole.outputDir));
  const a = (await readSafetensors(join(whole.outputDir, 'model.safetensors'))).tensors;
  const b = (await readSafetensors(join(broken, 'model.safetensors'))).tensors;
  assert.equal([...b.keys()].sort(), [...a.keys()].sort());
  for (const [name, tensor] of a) assert.equal(b.get(name)!.data, tensor.data, name);

  // --resume DIR picks that checkpoint; a changed setting that would change the steps is refused.
  const changed = node([
    'packages/cli/src/main.ts',
    'train',
    '--config',
    config,
    '--resume',
    join(broken, 'checkpoint-4'),
    '--learning_rate',
    '2e-3',
  ]);
  assert.is.not(changed.status, 0);
  assert.match(changed.stderr, /cannot resume from .*checkpoint-4: learning_rate was 0.001, now 0.002/);
});

test('a NaN loss stops training with a clear message and leaves the last checkpoint intact', async () => {
  const dir = toyDataDir('nan', 12);
  const config = loadTrainConfig(
    writeConfig(
      dir,
      'nan.json',
      tinyConfig('reranker', {
        learning_rate: 1e30,
        max_grad_norm: 0,
        save_steps: 1,
        max_steps: 10,
        lr_scheduler_type: 'constant',
      }),
    ),
  );
  let error: unknown;
  try {
    await train(config, quiet);
  } catch (e) {
    error = e;
  }
  assert.instance(error, NonFiniteLossError);
  const message = (error as Error).message;
  assert.match(message, /^step (\d+): the (loss is NaN|loss is -?Infinity|gradient norm is \S+|weights hold NaN)/);
  const failedStep = Number(/^step (\d+)/.exec(message)![1]);
  const saved = readdirSync(config.output_dir)
    .filter((e) => e.startsWith('checkpoint-'))
    .sort();
  assert.ok(saved.length >= 1, 'at least the first step was saved');
  const last = join(config.output_dir, `checkpoint-${failedStep - 1}`);
  assert.match(message, `The last good state is ${last} (continue with --resume ${last})`);
  assert.ok(existsSync(join(last, 'trainer_state.json')));
  assert.ok(!saved.some((e) => Number(e.slice('checkpoint-'.length)) >= failedStep), 'nothing saved from the failed step on');
  assert.not.ok(existsSync(join(config.output_dir, 'model.safetensors')), 'no final export');
  const weights = (await readSafetensors(join(last, 'model.safetensors'))).tensors;
  for (const [name, t] of weights) assert.ok((t.data as Float32Array).every(Number.isFinite), `${name} finite in the kept checkpoint`);
});

test.run();
