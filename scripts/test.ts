/**
 * Runs every uvu test file of the workspace (`packages/* /test/**.test.ts` and `test/**.test.ts`),
 * each in its own process so that a file that fails to load, or leaves a backend in a strange
 * state, cannot hide the others. uvu prints per-file totals but no grand total: this sums them and
 * ends with the line `N passed, N failed, N skipped`, exiting 1 on any failure. A file whose tests cannot run
 * here (e.g. no native addon) registers them with uvu's `test.skip` and prints why on a `skip: ` line, shown
 * under the file's result.
 *
 *   pnpm test                 all files
 *   pnpm test tokenizer       files whose path contains "tokenizer"
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

interface FileResult { file: string; passed: number; failed: number; skipped: number; output: string; seconds: number }

function runFile(file: string): Promise<FileResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code) => {
      const count = (label: string) => {
        // uvu prints one summary block per file: "Total: n  Passed: n  Skipped: n".
        const m = output.match(new RegExp(`${label}:\\s+(\\d+)`));
        return m ? Number(m[1]) : undefined;
      };
      const total = count('Total');
      const passed = count('Passed');
      const skipped = count('Skipped') ?? 0;
      let failed: number;
      if (total === undefined || passed === undefined) failed = 1; // failed to load or crashed before uvu reported
      // uvu's Total leaves the skipped tests out.
      else failed = total - passed + (code === 0 || total - passed > 0 ? 0 : 1);
      resolve({ file: relative(root, file), passed: passed ?? 0, failed, skipped, output, seconds: (Date.now() - started) / 1000 });
    });
  });
}

const filters = process.argv.slice(2);
// The cross-package suites of test/ start first: the Python referee's first run builds its venv (a minute of
// pip, mostly waiting on the disk), which then overlaps the package tests instead of following them.
const files = [...findTests(join(root, 'test')).sort(), ...findTests(join(root, 'packages')).sort()]
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
const workers = Math.max(1, Math.min(Number(process.env.KOTUNE_TEST_JOBS ?? cpus().length), 4));

const results: FileResult[] = [];
let next = 0;
async function worker() {
  while (next < files.length) {
    const result = await runFile(files[next++]!);
    results.push(result);
    const status = result.failed > 0 ? 'FAIL' : 'ok  ';
    const skipped = result.skipped > 0 ? `, ${result.skipped} skipped` : '';
    process.stdout.write(`${status} ${result.file}  (${result.passed} passed, ${result.failed} failed${skipped}, ${result.seconds.toFixed(1)}s)\n`);
    if (result.failed > 0) process.stdout.write(result.output.replace(/^/gm, '    | ') + '\n');
    else for (const line of result.output.match(/^skip: .*$/gm) ?? []) process.stdout.write(`    ${line}\n`);
  }
}
await Promise.all(Array.from({ length: workers }, worker));

const sum = (k: 'passed' | 'failed' | 'skipped') => results.reduce((s, r) => s + r[k], 0);
if (files.length === 0) console.log('no test files found');
console.log(`${sum('passed')} passed, ${sum('failed')} failed, ${sum('skipped')} skipped`);
process.exit(sum('failed') > 0 || files.length === 0 ? 1 : 0);
