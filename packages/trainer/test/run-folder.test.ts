/**
 * The run folder before a run writes to it: one writer (the lock), no silent overwrite of an earlier run, and a
 * folder that can be created and written.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@kotune/engine';
import { LOCK_FILE, loadTrainConfig, train, type TrainConfig } from '../src/index.ts';
import { acquireRunLock, RunLockedError, type LockHolder } from '../src/lock.ts';
import { claimRunFolder, outputDirProblems } from '../src/run-folder.ts';
import { quiet, REPO, tinyConfig, toyDataDir, writeConfig } from './support/tiny-run.ts';

await initBackend({ backend: 'wasm', log: null });

function lockedError(fn: () => unknown): RunLockedError {
  try {
    fn();
  } catch (error) {
    assert.instance(error, RunLockedError);
    return error as RunLockedError;
  }
  return assert.unreachable('expected RunLockedError') as never;
}

/** The pid of a process that has ended. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

test('the lock names its holder to a second writer, and is gone once released', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-lock-'));
  const lock = acquireRunLock(dir, () => {});
  const holder = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as LockHolder;
  assert.equal([holder.pid, holder.host], [process.pid, hostname()]);
  assert.match(holder.started, /^\d{4}-\d\d-\d\dT/);
  const second = lockedError(() => acquireRunLock(dir, () => {}));
  assert.is(
    second.message,
    `${dir} is in use by another kotune run (pid ${process.pid} on ${hostname()}, started ${holder.started}: ` +
      `${holder.command}). Wait for it to finish, stop it, or give another output_dir.`,
  );
  lock.release();
  lock.release(); // idempotent
  assert.not.ok(existsSync(join(dir, LOCK_FILE)));
  acquireRunLock(dir, () => {}).release();
});

test("a stale lock (its process gone, or its pid now another process's) is taken over with a line saying so", () => {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-lock-'));
  const stale: LockHolder = {
    pid: deadPid(),
    host: hostname(),
    started: '2025-01-01T00:00:00.000Z',
    command: 'kotune train --config old.json',
  };
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify(stale));
  const lines: string[] = [];
  const lock = acquireRunLock(dir, (line) => lines.push(line));
  assert.equal(lines, [
    `taking over the stale lock ${join(dir, LOCK_FILE)}: its run (pid ${stale.pid} on ${hostname()}, ` +
      'started 2025-01-01T00:00:00.000Z: kotune train --config old.json) is no longer running',
  ]);
  assert.is((JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as LockHolder).pid, process.pid);
  lock.release();
  // The pid is alive (this process) but started at another time than the lock says: reused, so the lock is stale.
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ ...stale, pid: process.pid, start_ticks: 1 }));
  acquireRunLock(dir, () => {}).release();
});

test('a lock of another host is not taken over; a lock still being written is waited for, unless it is old', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-lock-'));
  const path = join(dir, LOCK_FILE);
  writeFileSync(path, JSON.stringify({ pid: deadPid(), host: 'gpu-box-7', started: '2025-01-01T00:00:00.000Z', command: 'kotune train' }));
  assert.match(
    lockedError(() => acquireRunLock(dir, () => {})).message,
    `Processes of gpu-box-7 cannot be checked from ${hostname()}: if that run has ended, delete ${path}.`,
  );
  writeFileSync(path, '');
  assert.match(lockedError(() => acquireRunLock(dir, () => {})).message, `${dir} is in use by another kotune run that is starting`);
  utimesSync(path, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  const lines: string[] = [];
  acquireRunLock(dir, (line) => lines.push(line)).release();
  assert.equal(lines, [`taking over the stale lock ${path}: it was never completed`]);
});

test('of several processes taking the lock at once, exactly one gets it (O_EXCL)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-lock-'));
  const script = join(dir, 'take.mts'); // .mts: an ES module outside any package
  writeFileSync(
    script,
    `import { acquireRunLock } from ${JSON.stringify(join(REPO, 'packages/trainer/src/lock.ts'))};\n` +
      'console.log("ready");\n' +
      'await new Promise((r) => process.stdin.once("data", r));\n' + // all try together, on the parent's word
      `try { acquireRunLock(${JSON.stringify(dir)}, () => {}); console.log('got it'); await new Promise((r) => setTimeout(r, 300)); } ` +
      'catch (error) { console.log(error.name); }\n',
  );
  const children = Array.from({ length: 3 }, () =>
    spawn(process.execPath, ['--import', 'tsx', script], { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  const outputs = children.map((child) => {
    let out = '';
    const ready = new Promise<void>((resolve) =>
      child.stdout.on('data', (d) => {
        out += d;
        if (out.startsWith('ready\n')) resolve();
      }),
    );
    const done = new Promise<string>((resolve) => child.on('close', () => resolve(out.slice('ready\n'.length).trim())));
    return { ready, done };
  });
  await Promise.all(outputs.map((o) => o.ready));
  for (const child of children) child.stdin.end('go\n');
  const results = (await Promise.all(outputs.map((o) => o.done))).sort();
  assert.equal(results, ['RunLockedError', 'RunLockedError', 'got it']);
  assert.not.ok(existsSync(join(dir, LOCK_FILE)), 'released at exit by the one that held it');
});

/** A finished 2-step run in `dir/out`. */
async function finishedRun(dir: string): Promise<TrainConfig> {
  const config = loadTrainConfig(writeConfig(dir, 'run.json', tinyConfig('reranker', { max_steps: 2, save_steps: 1 })));
  await train(config, quiet);
  return config;
}

test('a fresh run into a folder that holds a run stops, naming what is there; --overwrite_output_dir deletes only that run first', async () => {
  const dir = toyDataDir('holds');
  const config = await finishedRun(dir);
  const out = config.output_dir;
  writeFileSync(join(out, 'notes.txt'), 'mine');
  const error = await train(config, quiet).then(
    () => null,
    (e: Error) => e,
  );
  assert.is(
    error?.message,
    `output_dir ${out} already holds a run (checkpoint-1, checkpoint-2, metrics.jsonl, plot-loss.png, ` +
      'plot-learning-rate.png, an exported model). Pass --resume to continue it (with --max_steps N beyond its last step to train a ' +
      'finished run further), or --overwrite_output_dir to delete it and start afresh, or give another output_dir.',
  );
  assert.ok(existsSync(join(out, 'checkpoint-2')), 'nothing deleted');
  assert.not.ok(existsSync(join(out, LOCK_FILE)), 'the lock is released when a run stops before it starts');

  const lines: string[] = [];
  await train({ ...config, overwrite_output_dir: true, max_steps: 1, save_steps: 500 }, { ...quiet, print: (l) => lines.push(l) });
  assert.ok(
    lines.includes(
      `overwrite_output_dir: deleted the previous run in ${out} (checkpoint-1, checkpoint-2, metrics.jsonl, ` +
        'plot-loss.png, plot-learning-rate.png, an exported model)',
    ),
    lines.join('\n'),
  );
  assert.equal(
    readdirSync(out).filter((f) => f.startsWith('checkpoint-')),
    ['checkpoint-1'],
    'the old checkpoint-2 is gone',
  );
  assert.is(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine', 'a file kotune did not write stays');
});

test('output_dir problems: a file in its place, a file on its path, a live run holding it; none of them writes anything', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-outdir-'));
  const config = (outputDir: string) =>
    ({ output_dir: outputDir, resume_from_checkpoint: null, overwrite_output_dir: false }) as TrainConfig;
  writeFileSync(join(dir, 'taken'), 'a file');
  assert.equal(outputDirProblems(config(join(dir, 'taken'))), [`output_dir ${join(dir, 'taken')} is a file, not a folder`]);
  assert.equal(outputDirProblems(config(join(dir, 'taken', 'run', 'out'))), [
    `output_dir ${join(dir, 'taken', 'run', 'out')} cannot be created: ${join(dir, 'taken')} is a file, not a folder`,
  ]);
  assert.throws(
    () => claimRunFolder(config(join(dir, 'taken')), () => {}),
    (e: Error) => e.message === `output_dir ${join(dir, 'taken')} is a file, not a folder`,
  );
  assert.equal(outputDirProblems(config(join(dir, 'new', 'deeper'))), [], 'a folder that can be created');
  mkdirSync(join(dir, 'busy'));
  const lock = acquireRunLock(join(dir, 'busy'), () => {});
  assert.match(
    outputDirProblems(config(join(dir, 'busy')))[0]!,
    `${join(dir, 'busy')} is in use by another kotune run (pid ${process.pid}`,
  );
  lock.release();
  assert.equal(readdirSync(dir).sort(), ['busy', 'taken'], 'no probe file left behind');
});

// Root writes anywhere: the check runs as `nobody` (65534) there, as the user itself elsewhere. `nobody` must be
// able to read the repository (a clone inside a folder only root may enter, e.g. mkdtemp's, cannot be).
const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
const unreadableRepo =
  'uid' in asUser
    ? spawnSync(
        process.execPath,
        ['-e', 'require("fs").accessSync(process.argv[1], require("fs").constants.R_OK)', join(REPO, 'package.json')],
        asUser,
      ).status !== 0
    : false;
if (unreadableRepo) console.log(`skip: output_dir in a folder the user may not write to (the unprivileged user cannot read ${REPO})`);
(unreadableRepo ? test.skip : test)('output_dir in a folder the user may not write to (run as an unprivileged user when root)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-readonly-'));
  mkdirSync(join(dir, 'locked'));
  chmodSync(join(dir, 'locked'), 0o555);
  chmodSync(dir, 0o755);
  const script =
    `import { outputDirProblems } from ${JSON.stringify(join(REPO, 'packages/trainer/src/run-folder.ts'))};\n` +
    `console.log(JSON.stringify(outputDirProblems({ output_dir: ${JSON.stringify(join(dir, 'locked', 'out'))}, resume_from_checkpoint: null, overwrite_output_dir: false })));\n`;
  writeFileSync(join(dir, 'check.ts'), script);
  chmodSync(join(dir, 'check.ts'), 0o644);
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(dir, 'check.ts')], {
    cwd: REPO,
    encoding: 'utf8',
    ...asUser,
    env: { ...process.env, HOME: dir },
  });
  assert.is(result.status, 0, result.stderr);
  assert.equal(JSON.parse(result.stdout), [
    `output_dir ${join(dir, 'locked', 'out')} cannot be created in ${join(dir, 'locked')}: permission denied`,
  ]);
});

test.run();
