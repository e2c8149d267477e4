// Builds build/kotune_native.node from src/kernels.cc with the system C++ compiler against Node's own
// headers (no node-gyp: it would download headers, and this needs one compiler call). Runs at
// `pnpm install`; where it cannot build (no compiler, no headers, not x86-64 Linux) it says why in one
// line (the compiler's own output goes to build/compile.log) and exits 0, and the engine keeps the
// backends' own kernels. Plain JavaScript: it runs before the workspace's TypeScript tooling is
// installed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, 'build', 'kotune_native.node');
/** The compiler's own output: kept out of the install log, which gets one line, but not lost. */
const compileLog = join(here, 'build', 'compile.log');
const compiler = process.env.CXX || 'g++';

function nodeHeaders() {
  const candidates = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    resolve(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean);
  return candidates.find((dir) => existsSync(join(dir, 'node_api.h')));
}

function skip(reason) {
  rmSync(output, { force: true }); // an addon from earlier sources must not load as if it were this one
  console.log(`@kotune/native: not built (${reason}); the TensorFlow.js backends run their own kernels`);
  process.exit(0);
}

if (process.platform !== 'linux' || process.arch !== 'x64') skip(`needs x86-64 Linux, this is ${process.platform}-${process.arch}`);
const headers = nodeHeaders();
if (!headers) skip("Node's headers (node_api.h) were not found; set npm_config_nodedir to Node's install prefix");

mkdirSync(dirname(output), { recursive: true });
const temporary = `${output}.${process.pid}.tmp`;
const run = spawnSync(compiler, ['-O3', '-std=c++17', '-ffp-contract=off', '-shared', '-fPIC', '-Wall', '-Wextra', `-I${headers}`, join(here, 'src', 'kernels.cc'), '-o', temporary, '-ldl'], {
  stdio: ['ignore', 'pipe', 'pipe'],
  encoding: 'utf8',
});
const messages = `${run.stdout ?? ''}${run.stderr ?? ''}`;
writeFileSync(compileLog, messages);
if (run.status !== 0) {
  rmSync(temporary, { force: true });
  if (run.error?.code === 'ENOENT') skip(`${compiler} is not installed (CXX may name another C++17 compiler)`);
  const first = messages.split('\n').find((line) => /\berror\b/.test(line)) ?? run.error?.message ?? `exit status ${run.status}`;
  skip(`${compiler} failed: ${first.trim()} (full output: ${compileLog})`);
}
renameSync(temporary, output);
const warnings = messages.split('\n').filter((line) => /\bwarning\b/.test(line)).length;
console.log(`@kotune/native: built ${output}${warnings > 0 ? ` (${warnings} compiler warnings: ${compileLog})` : ''}`);
