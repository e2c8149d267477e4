/**
 * Runs every test of the workspace and ends with the line `N passed, N failed, N skipped`, exiting 1 on any
 * failure. With no filter (`pnpm test`, what `.ci/run` and the README run) that is everything CI checks:
 *   - the static checks: `tsc --noEmit` (typecheck) and biome's linter and formatter + the package conventions
 *     (lint), one test each;
 *   - the pack-and-install test (`test/install/pack-install.ts`: kotune as a user installs it from tarballs);
 *   - every uvu test file (`packages/* /test/**.test.ts` and `test/**.test.ts`);
 *   - the model, loss and optimizer files again with `KOTUNE_NATIVE=off`, the path of a machine without the addon.
 * Each runs in its own process so that a file that fails to load, or leaves a backend in a strange state, cannot
 * hide the others; uvu prints per-file totals, summed here. A file whose tests cannot run here (e.g. no native
 * addon) registers them with uvu's `test.skip` and prints why on a `skip: ` line, shown under the file's result.
 *
 *   pnpm test                 everything above
 *   pnpm test tokenizer       only the uvu test files whose path contains "tokenizer" (no checks, no re-runs)
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cpus } from 'node:os';

const root = new URL('..', import.meta.url).pathname;

function findTests(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules' || entry.startsWith('.')) continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) findTests(path, out);
    else if (entry.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

interface FileResult {
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  output: string;
  seconds: number;
}
/** A uvu file to run (`env` added to the environment, `label` after its name), or a command that passes by exiting 0. */
type Job = { file: string; env?: Record<string, string>; label?: string } | { check: string; command: string[] };

function run(job: Job): Promise<FileResult> {
  const started = Date.now();
  const [command, args] = 'check' in job ? [job.command[0]!, job.command.slice(1)] : [process.execPath, ['--import', 'tsx', job.file]];
  const name = 'check' in job ? job.check : `${relative(root, job.file)}${job.label ? `  [${job.label}]` : ''}`;
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: '0', ...('env' in job ? job.env : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code) => {
      const seconds = (Date.now() - started) / 1000;
      if ('check' in job)
        return resolve({ file: name, passed: code === 0 ? 1 : 0, failed: code === 0 ? 0 : 1, skipped: 0, output, seconds });
      const count = (label: string) => {
        // uvu prints one summary block per file: "Total: n  Passed: n  Skipped: n".
        const m = output.match(new RegExp(`${label}:\\s+(\\d+)`));
        return m ? Number(m[1]) : undefined;
      };
      const total = count('Total');
      const passed = count('Passed');
      const skipped = count('Skipped') ?? 0;
      let failed: number;
      if (total === undefined || passed === undefined)
        failed = 1; // failed to load or crashed before uvu reported
      // uvu's Total leaves the skipped tests out.
      else failed = total - passed + (code === 0 || total - passed > 0 ? 0 : 1);
      resolve({ file: name, passed: passed ?? 0, failed, skipped, output, seconds });
    });
  });
}

const filters = process.argv.slice(2);
const everything = filters.length === 0;
// The cross-package suites of test/ start first: the Python referee's first run builds its venv (a minute of
// pip, mostly waiting on the disk), which then overlaps the package tests instead of following them.
const files = [...findTests(join(root, 'test')).sort(), ...findTests(join(root, 'packages')).sort()].filter(
  (f) => everything || filters.some((s) => f.includes(s)),
);
/** The files that also run without the native kernels: the model, the losses and the optimizer. */
const NATIVE_OFF = ['packages/xlm-roberta/', 'packages/losses/', 'packages/optim/'];
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
const jobs: Job[] = [
  ...(everything
    ? [
        { check: 'typecheck (tsc --noEmit)', command: [bin('tsc'), '-p', 'tsconfig.json', '--noEmit'] },
        {
          check: 'lint (biome lint and format, package conventions)',
          command: [
            'sh',
            '-c',
            `"${bin('biome')}" lint --error-on-warnings && "${bin('biome')}" format && "${bin('tsx')}" scripts/check-packages.ts`,
          ],
        },
        { file: join(root, 'test', 'install', 'pack-install.ts') },
      ]
    : []),
  ...files.map((file) => ({ file })),
  ...(everything
    ? files
        .filter((f) => NATIVE_OFF.some((dir) => relative(root, f).startsWith(dir)))
        .map((file) => ({ file, env: { KOTUNE_NATIVE: 'off' }, label: 'KOTUNE_NATIVE=off' }))
    : []),
];
const workers = Math.max(1, Math.min(Number(process.env.KOTUNE_TEST_JOBS ?? cpus().length), 4));

const results: FileResult[] = [];
let next = 0;
async function worker() {
  while (next < jobs.length) {
    const result = await run(jobs[next++]!);
    results.push(result);
    const status = result.failed > 0 ? 'FAIL' : 'ok  ';
    const skipped = result.skipped > 0 ? `, ${result.skipped} skipped` : '';
    process.stdout.write(
      `${status} ${result.file}  (${result.passed} passed, ${result.failed} failed${skipped}, ${result.seconds.toFixed(1)}s)\n`,
    );
    if (result.failed > 0) process.stdout.write(result.output.replace(/^/gm, '    | ') + '\n');
    else for (const line of result.output.match(/^skip: .*$/gm) ?? []) process.stdout.write(`    ${line}\n`);
  }
}
await Promise.all(Array.from({ length: workers }, worker));

const sum = (k: 'passed' | 'failed' | 'skipped') => results.reduce((s, r) => s + r[k], 0);
if (jobs.length === 0) console.log('no test files found');
console.log(`${sum('passed')} passed, ${sum('failed')} failed, ${sum('skipped')} skipped`);
process.exit(sum('failed') > 0 || jobs.length === 0 ? 1 : 0);
