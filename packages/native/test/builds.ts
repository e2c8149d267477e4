/**
 * For the tests that build the addon another way (portable, sanitized, cross-compiled) into a folder of their own
 * and run the native kernels' tests against it: the addon the other tests load stays in place. Not a test file
 * itself: the runner only loads `*.test.ts`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const buildScript = fileURLToPath(new URL('../build.mjs', import.meta.url));

/** The test files (path filters of `pnpm test`) that exercise every kernel of the addon. */
export const KERNEL_TESTS = [
  'packages/native/test/gemm',
  'packages/native/test/elementwise',
  'packages/native/test/hardening',
  'packages/native/test/adamw',
  'packages/native/test/encoder',
  'packages/optim/test/adamw-unit',
  'packages/engine/test/fused',
  'packages/engine/test/native-sums',
  'packages/engine/test/matmul',
  'packages/eval/test/search',
  'packages/xlm-roberta/test/native-encoder', // and native-encoder-train
];

/** Runs build.mjs with `env` into a new temporary folder; its one line, the addon's path and the seconds it took. */
export function buildAddon(env: Record<string, string>): { line: string; addon: string; dir: string; seconds: number } {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-native-variant-'));
  const started = Date.now();
  const run = spawnSync(process.execPath, [buildScript], {
    env: { ...process.env, ...env, KOTUNE_NATIVE_BUILD_DIR: dir },
    encoding: 'utf8',
  });
  return { line: `${run.stdout}${run.stderr}`.trim(), addon: join(dir, 'kotune_native.node'), dir, seconds: (Date.now() - started) / 1000 };
}

/** `pnpm test` of `filters` with `env` (e.g. KOTUNE_NATIVE_ADDON): its totals and whole output. */
export function runTests(
  filters: string[],
  env: Record<string, string>,
): { passed: number; failed: number; skipped: number; output: string } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'test.ts'), ...filters], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  const output = `${run.stdout}${run.stderr}`;
  const totals = output.match(/^(\d+) passed, (\d+) failed, (\d+) skipped$/m);
  if (!totals) return { passed: 0, failed: 1, skipped: 0, output };
  return { passed: Number(totals[1]), failed: Number(totals[2]), skipped: Number(totals[3]), output };
}
