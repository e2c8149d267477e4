/**
 * The `kotune` entry point as users run it (`pnpm kotune …` = `tsx packages/cli/src/main.ts …`), in a child
 * process: the command tests call `run()` directly and cannot see a broken entry file or a command that fails
 * to load.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));

function kotune(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', main, ...args], { cwd: root }, (error, out, err) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out, err });
    });
  });
}

test('kotune --help lists every command', async () => {
  const { code, out } = await kotune('--help');
  assert.is(code, 0);
  for (const name of ['demo', 'train', 'score', 'encode', 'eval', 'mine', 'score-data', 'metrics', 'export', 'doctor', 'serve']) {
    assert.match(out, new RegExp(`^  ${name} `, 'm'), name);
  }
});

test('every command loads and prints its own usage', async () => {
  const { out: list } = await kotune('--help');
  const names = [...list.matchAll(/^  (\S+) /gm)].map((m) => m[1]!);
  const results = await Promise.all(names.map((name) => kotune(name, '--help')));
  names.forEach((name, i) => {
    assert.is(results[i]!.code, 0, `${name}: ${results[i]!.err}`);
    assert.match(results[i]!.out, name, name);
  });
});

test('an unknown command exits 2 with the list of commands', async () => {
  const { code, err } = await kotune('tarin');
  assert.is(code, 2);
  assert.match(err, "unknown command 'tarin'");
  assert.match(err, 'score-data');
});

test('a file-system error reaches the user in words naming the file, never as raw errno text', async () => {
  const missing = join(tmpdir(), 'kotune-no-such-file.qrels');
  const { code, err } = await kotune('metrics', '--run', missing, '--qrels', missing);
  assert.is(code, 1);
  assert.is(err, `kotune: ${missing}: cannot read (no such file or folder)\n`);
});

test.run();
