/**
 * `build.mjs` where the addon cannot build: one line saying why, exit status 0 (an install must not fail for
 * it), no addon left behind from an earlier build, and the compiler's messages kept in build/compile.log.
 * Runs on a copy of the package, so that the addon the other tests load stays in place.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('..', import.meta.url));

function buildWith(
  compiler: (dir: string) => string,
  env: Record<string, string> = {},
): { status: number | null; lines: string[]; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-native-build-'));
  cpSync(join(here, 'build.mjs'), join(dir, 'build.mjs'));
  cpSync(join(here, 'src'), join(dir, 'src'), { recursive: true });
  mkdirSync(join(dir, 'build'));
  writeFileSync(join(dir, 'build', 'kotune_native.node'), 'an addon from an earlier build');
  writeFileSync(join(dir, 'build', 'kotune_native.json'), '{}');
  const run = spawnSync(process.execPath, [join(dir, 'build.mjs')], {
    env: { ...process.env, CXX: compiler(dir), ...env },
    encoding: 'utf8',
  });
  return { status: run.status, lines: `${run.stdout}${run.stderr}`.split('\n').filter((l) => l !== ''), dir };
}

test('no compiler: one line, exit 0, nothing left to load', () => {
  const { status, lines, dir } = buildWith((d) => join(d, 'no-such-compiler'));
  try {
    assert.is(status, 0);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /^@kotune\/native: not built \(.*no-such-compiler is not installed/);
    assert.not.ok(existsSync(join(dir, 'build', 'kotune_native.node')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a compiler that fails: its first error on the one line, all its output in build/compile.log', () => {
  const { status, lines, dir } = buildWith((d) => {
    const fake = join(d, 'failing-cxx');
    writeFileSync(
      fake,
      '#!/bin/sh\necho "kernels.cc:1:1: note: context" >&2\necho "kernels.cc:2:3: error: no AVX here" >&2\necho "1 error generated." >&2\nexit 1\n',
    );
    chmodSync(fake, 0o755);
    return fake;
  });
  try {
    assert.is(status, 0);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(
      lines[0]!,
      /^@kotune\/native: not built \(.*failing-cxx failed: kernels\.cc:2:3: error: no AVX here \(full output: .*compile\.log\)\)/,
    );
    assert.match(readFileSync(join(dir, 'build', 'compile.log'), 'utf8'), /note: context\n.*error: no AVX here\n1 error generated\./);
    assert.not.ok(existsSync(join(dir, 'build', 'kotune_native.node')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unknown KOTUNE_NATIVE_ISA: one line naming the choices, exit 0, nothing left to load', () => {
  const { status, lines, dir } = buildWith(() => 'g++', { KOTUNE_NATIVE_ISA: 'avx9000' });
  try {
    assert.is(status, 0);
    assert.equal(lines, [
      '@kotune/native: not built (unknown KOTUNE_NATIVE_ISA "avx9000": use one of auto, portable, x86-64-v3, x86-64-v4); the TensorFlow.js backends run their own kernels',
    ]);
    assert.not.ok(existsSync(join(dir, 'build', 'kotune_native.node')));
    assert.not.ok(existsSync(join(dir, 'build', 'kotune_native.json')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
