/**
 * Graceful stop, with a real `kotune train` process and real signals: the first SIGINT finishes the step, saves
 * it, prints the checkpoint and the command that resumes it, and exits 130; that command ends with the weights
 * of a run that was never stopped. A second signal stops at once.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '@kotune/engine';
import { readSafetensors } from '@kotune/weights';
import { isEvalLine, LOCK_FILE, loadTrainConfig, readMetricsLog, train } from '../src/index.ts';
import { StopRequest } from '../src/stop.ts';
import { quiet, REPO, tinyConfig, toyDataDir, writeConfig } from './support/tiny-run.ts';

await initBackend({ backend: 'wasm', log: null });

interface Finished {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Runs `kotune train ARGS` and sends it `signals` (one after the other, at once) when its stderr first shows
 * `step N/` (logging_steps 1 prints every step).
 */
function kotuneSignalled(args: string[], atStep: number, signals: NodeJS.Signals[]): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'packages/cli/src/main.ts', 'train', ...args], {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (data) => {
      stderr += data;
      if (!sent && stderr.includes(`step ${atStep}/`)) {
        sent = true;
        for (const signal of signals) child.kill(signal);
      }
    });
    child.on('close', (status, signal) => resolve({ status, signal, stderr }));
  });
}

function kotune(args: string[]): Promise<Finished> {
  return kotuneSignalled(args, Number.POSITIVE_INFINITY, []);
}

/** metrics.jsonl without `samples_per_second`, the one field that depends on the clock. */
function logWithoutSpeed(outputDir: string): unknown[] {
  return readMetricsLog(join(outputDir, 'metrics.jsonl')).map((line) => {
    if (isEvalLine(line)) return line;
    const { samples_per_second: _, ...rest } = line;
    return rest;
  });
}

test('SIGINT: the step is finished and saved, the resume command printed, exit 130; that command ends bit-identical to an unstopped run', async () => {
  const dir = toyDataDir('stop', 20);
  const raw = tinyConfig('reranker', { dropout: 0.1, per_device_train_batch_size: 2, max_steps: 12, save_steps: 100, warmup_steps: 2 });
  const whole = await train(loadTrainConfig(writeConfig(dir, 'whole.json', { ...raw, output_dir: 'whole' })), quiet);
  const config = writeConfig(dir, 'stopped.json', { ...raw, output_dir: 'stopped' });
  const out = join(dir, 'stopped');

  const stopped = await kotuneSignalled(['--config', config], 3, ['SIGINT']);
  assert.is(stopped.status, 130, stopped.stderr);
  assert.match(stopped.stderr, 'SIGINT: stopping after this step, which is saved first (Ctrl-C again stops at once)');
  const [, step] = /kotune: stopped by SIGINT after step (\d+) of 12; the run is saved in /.exec(stopped.stderr) ?? [];
  assert.ok(Number(step) >= 3 && Number(step) < 12, stopped.stderr);
  const checkpoint = join(out, `checkpoint-${step}`);
  assert.match(stopped.stderr, `kotune: stopped by SIGINT after step ${step} of 12; the run is saved in ${checkpoint}\n`);
  assert.match(stopped.stderr, `resume with: kotune train --config ${config} --resume ${checkpoint}\n`);
  assert.ok(existsSync(join(checkpoint, 'trainer_state.json')), 'the stopped step is checkpointed (save_steps would not have)');
  assert.not.ok(existsSync(join(out, 'model.safetensors')), 'no final export');
  assert.not.ok(existsSync(join(out, LOCK_FILE)), 'the lock is released');

  const command = /resume with: kotune train (.*)\n/.exec(stopped.stderr)![1]!.split(' ');
  const resumed = await kotune(command);
  assert.is(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, `resumed from ${checkpoint} at step ${step}`);
  // Float32 equality, tolerance 0: every logged step and the final weights.
  assert.equal(logWithoutSpeed(out), logWithoutSpeed(whole.outputDir));
  const a = (await readSafetensors(join(whole.outputDir, 'model.safetensors'))).tensors;
  const b = (await readSafetensors(join(out, 'model.safetensors'))).tensors;
  for (const [name, tensor] of a) assert.equal(b.get(name)!.data, tensor.data, name);
});

test('SIGTERM (a service manager, docker stop): the same graceful stop, exit 143; a second signal stops at once, saying what is saved', async () => {
  const dir = toyDataDir('term', 20);
  const raw = tinyConfig('reranker', { per_device_train_batch_size: 2, max_steps: 12, save_steps: 100 });
  const config = writeConfig(dir, 'term.json', { ...raw, output_dir: 'term' });
  const stopped = await kotuneSignalled(['--config', config], 2, ['SIGTERM']);
  assert.is(stopped.status, 143, stopped.stderr);
  assert.match(stopped.stderr, 'SIGTERM: stopping after this step, which is saved first (a signal again stops at once)');
  assert.match(stopped.stderr, /kotune: stopped by SIGTERM after step \d+ of 12; the run is saved in .*checkpoint-\d+\n/);
  assert.match(stopped.stderr, `resume with: kotune train --config ${config} --resume `);

  // Two signals at once: the second either reaches the listener (the line, the lock released, 128 + its number) or, once
  // the first has given the default action back, ends the process; never a finished graceful stop.
  const again = writeConfig(dir, 'again.json', { ...raw, output_dir: 'again' });
  const twice = await kotuneSignalled(['--config', again], 2, ['SIGTERM', 'SIGINT']);
  assert.not.match(twice.stderr, 'stopped by SIGTERM after step', twice.stderr);
  // libuv may hand the two to the listener in either order: the one it sees second names the exit code.
  if (twice.signal === null) {
    const [, second] =
      /(SIGINT|SIGTERM) again: stopped at once; (?:the last checkpoint is .*checkpoint-\d+|no checkpoint was saved)\n/.exec(twice.stderr) ??
      [];
    assert.ok(second, twice.stderr);
    assert.is(twice.status, StopRequest.exitCode(second as NodeJS.Signals), twice.stderr);
    assert.not.ok(existsSync(join(dir, 'again', LOCK_FILE)), 'the lock is released');
  } else {
    assert.ok(['SIGINT', 'SIGTERM'].includes(twice.signal), twice.stderr);
  }
});

/** Runs support/stop-request.ts MODE, calling `onLine` with each line it prints. */
function stopRequestProcess(mode: string, onLine: (line: string, child: ReturnType<typeof spawn>) => void = () => {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'packages/trainer/test/support/stop-request.ts', mode], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (data) => {
    out += data;
    for (const line of String(data).trim().split('\n')) onLine(line, child);
  });
  return new Promise<{ status: number | null; signal: NodeJS.Signals | null; out: string }>((resolve) =>
    child.on('close', (status, signal) => resolve({ status, signal, out })),
  );
}

test('a second signal stops at once, even while a step holds the thread (the default action is back)', async () => {
  let secondAt = 0;
  const ended = await stopRequestProcess('busy', (line, child) => {
    if (line === 'ready') child.kill('SIGTERM');
    if (line === 'first SIGTERM') {
      secondAt = Date.now();
      setTimeout(() => child.kill('SIGINT'), 200); // inside the 3 s the thread is held
    }
  });
  assert.equal([ended.status, ended.signal], [null, 'SIGINT'], ended.out);
  assert.not.match(ended.out, 'survived');
  assert.ok(Date.now() - secondAt < 2000, 'ended long before the held thread would have let a listener run');
});

test('two signals that arrive together: the first asks for the graceful stop, the second exits at once (128 + its number)', async () => {
  const ended = await stopRequestProcess('queued');
  assert.is(ended.out, 'first SIGINT\nsecond SIGTERM\n');
  assert.is(ended.status, 143);
});

test("exit codes: 128 + the signal's number, as a shell reports a process the signal ended", () => {
  assert.is(StopRequest.exitCode('SIGINT'), 130);
  assert.is(StopRequest.exitCode('SIGTERM'), 143);
});

test.run();
