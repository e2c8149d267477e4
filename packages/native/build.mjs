// Builds build/kotune_native.node from src/kernels.cc with the system C++ compiler against Node's own
// headers (no node-gyp: it would download headers, and this needs one compiler call). Runs at
// `pnpm install`; where it cannot build (no compiler, no headers, not x86-64 Linux) it says why and
// exits 0, and the engine keeps the backends' own kernels. Plain JavaScript: it runs before the
// workspace's TypeScript tooling is installed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, 'build', 'kotune_native.node');
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
  console.log(`@kotune/native: not built (${reason}); the TensorFlow.js backends run their own kernels`);
  process.exit(0);
}

if (process.platform !== 'linux' || process.arch !== 'x64') skip(`needs x86-64 Linux, this is ${process.platform}-${process.arch}`);
const headers = nodeHeaders();
if (!headers) skip("Node's headers (node_api.h) were not found; set npm_config_nodedir to Node's install prefix");

mkdirSync(dirname(output), { recursive: true });
const temporary = `${output}.${process.pid}.tmp`;
try {
  execFileSync(compiler, ['-O3', '-std=c++17', '-ffp-contract=off', '-shared', '-fPIC', '-Wall', '-Wextra', `-I${headers}`, join(here, 'src', 'kernels.cc'), '-o', temporary, '-ldl'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  renameSync(temporary, output);
} catch (err) {
  rmSync(temporary, { force: true });
  skip(`${compiler} failed: ${err.code === 'ENOENT' ? 'not installed' : err.message.split('\n')[0]}`);
}
console.log(`@kotune/native: built ${output}`);
