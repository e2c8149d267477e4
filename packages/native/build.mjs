// Builds build/kotune_native.node from src/*.cc (one file per job, see src/kernels.h) with the system C++
// compiler against Node's own headers (no node-gyp: it would download headers, and this needs a compiler call
// per file and one to link). Runs at
// `pnpm install`; where it cannot build (no compiler, no headers, not x86-64 Linux) it says why and
// exits 0, and the engine keeps the backends' own kernels. Plain JavaScript: it runs before the
// workspace's TypeScript tooling is installed.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

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

// Each source compiles in a process of its own, all at once (the files are independent), then one call links them.
const sources = readdirSync(join(here, 'src')).filter((f) => f.endsWith('.cc')).sort();
const objects = join(dirname(output), `objects.${process.pid}.tmp`);
const temporary = `${output}.${process.pid}.tmp`;
const run = promisify(execFile);
const flags = ['-O3', '-std=c++17', '-ffp-contract=off', '-fPIC', '-Wall', '-Wextra'];
mkdirSync(objects, { recursive: true });
try {
  const compiled = await Promise.all(sources.map(async (source) => {
    const object = join(objects, source.replace(/\.cc$/, '.o'));
    const { stderr } = await run(compiler, [...flags, `-I${headers}`, '-c', join(here, 'src', source), '-o', object]);
    if (stderr) process.stderr.write(stderr);
    return object;
  }));
  execFileSync(compiler, [...flags, '-shared', ...compiled, '-o', temporary, '-ldl'], { stdio: ['ignore', 'inherit', 'inherit'] });
  renameSync(temporary, output);
  rmSync(objects, { recursive: true, force: true });
} catch (err) {
  rmSync(temporary, { force: true });
  rmSync(objects, { recursive: true, force: true });
  if (err.stderr) process.stderr.write(err.stderr);
  skip(`${compiler} failed: ${err.code === 'ENOENT' ? 'not installed' : err.message.split('\n')[0]}`);
}
console.log(`@kotune/native: built ${output}`);
