/**
 * `pnpm bench`: the side-by-side bench against PyTorch (test/bench/side-by-side.bench.ts), whose last line is
 * its JSON summary.
 * `pnpm bench --all`: every `packages/* /bench/*.bench.ts` and `test/bench/*.bench.ts`, the side-by-side last.
 * `pnpm bench FILTER...`: those whose path contains every FILTER (e.g. `pnpm bench memory`, `pnpm bench engine`).
 *
 * Each runs in its own process, its output streamed. Benchmarks print their own tables and ratios; speed and
 * memory targets live here, never in timed tests. Arguments starting with `--` other than `--all` (such as
 * `--backend wasm`) are passed on to every bench.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const MAIN = join(root, 'test', 'bench', 'side-by-side.bench.ts');
const args = process.argv.slice(2);
const all = args.includes('--all');
const isFlag = (a: string | undefined): boolean => a !== undefined && a !== '--all' && a !== '--' && a.startsWith('--');
const passed = args.filter((a, i) => isFlag(a) || (isFlag(args[i - 1]) && !args[i - 1]!.includes('=')));
const filters = args.filter((a) => a !== '--all' && !passed.includes(a));

const dirs = [...readdirSync(join(root, 'packages')).map((p) => join(root, 'packages', p, 'bench')), join(root, 'test', 'bench')];
const every = dirs
  .filter((d) => existsSync(d))
  .flatMap((d) =>
    readdirSync(d)
      .filter((f) => f.endsWith('.bench.ts'))
      .map((f) => join(d, f)),
  )
  .sort((a, b) => Number(a === MAIN) - Number(b === MAIN) || a.localeCompare(b));
const files = all || filters.length > 0 ? every.filter((f) => filters.every((s) => relative(root, f).includes(s))) : [MAIN];

let failed = 0;
for (const file of files) {
  console.log(`\n=== ${relative(root, file)}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, ...passed], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
if (files.length === 0) console.log('no benchmark matched');
process.exit(failed ? 1 : 0);
