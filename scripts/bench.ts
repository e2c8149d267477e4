/**
 * `pnpm bench [filter]`: runs every `packages/* /bench/*.bench.ts` (and `test/bench/*.bench.ts`) in turn,
 * each in its own process, streaming its output. Benchmarks print their own tables and ratios; speed and
 * memory targets live here, never in timed tests.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const dirs = [...readdirSync(join(root, 'packages')).map((p) => join(root, 'packages', p, 'bench')), join(root, 'test', 'bench')];
const files = dirs
  .filter((d) => existsSync(d))
  .flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.bench.ts')).map((f) => join(d, f)))
  .filter((f) => process.argv.slice(2).every((s) => f.includes(s)))
  .sort();
let failed = 0;
for (const file of files) {
  console.log(`\n=== ${relative(root, file)}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
if (files.length === 0) console.log('no benchmark matched');
process.exit(failed ? 1 : 0);
