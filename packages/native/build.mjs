// Builds build/kotune_native.node from src/*.cc (one file per job, see src/kernels.h) with the system C++
// compiler against Node's own headers (no node-gyp: it would download headers, and this needs a compiler call
// per file and one to link). Runs at `pnpm install`; where it cannot build (no compiler, no headers, not x86-64
// Linux) it says why in one line (the compiler's own output goes to build/compile.log) and exits 0, and the
// engine keeps the backends' own kernels. Plain JavaScript: it runs before the workspace's TypeScript tooling
// is installed.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

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

// Each source compiles in a process of its own, all at once (the files are independent), then one call links them.
const sources = readdirSync(join(here, 'src')).filter((f) => f.endsWith('.cc')).sort();
const objects = join(dirname(output), `objects.${process.pid}.tmp`);
const temporary = `${output}.${process.pid}.tmp`;
const run = promisify(execFile);
const flags = ['-O3', '-std=c++17', '-ffp-contract=off', '-fPIC', '-Wall', '-Wextra'];
/** What the compiler says, file by file, for build/compile.log. */
const messages = [];
/** Runs the compiler; its output is logged, and a failure throws with the first error line. */
async function compile(args, label) {
  try {
    const { stdout, stderr } = await run(compiler, args, { maxBuffer: 64 << 20 });
    messages.push(`== ${label}\n${stdout}${stderr}`);
  } catch (err) {
    const text = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    messages.push(`== ${label}\n${text}`);
    const reason = err.code === 'ENOENT'
      ? `${compiler} is not installed (CXX may name another C++17 compiler)`
      : `${compiler} failed: ${(text.split('\n').find((line) => /\berror\b/.test(line)) ?? err.message.split('\n')[0]).trim()}`;
    throw new Error(reason);
  }
}
mkdirSync(objects, { recursive: true });
try {
  const compiled = await Promise.all(sources.map(async (source) => {
    const object = join(objects, source.replace(/\.cc$/, '.o'));
    await compile([...flags, `-I${headers}`, '-c', join(here, 'src', source), '-o', object], source);
    return object;
  }));
  await compile([...flags, '-shared', ...compiled, '-o', temporary, '-ldl'], 'link');
  renameSync(temporary, output);
} catch (err) {
  rmSync(temporary, { force: true });
  writeFileSync(compileLog, messages.join('\n'));
  skip(`${err.message} (full output: ${compileLog})`);
} finally {
  rmSync(objects, { recursive: true, force: true });
}
writeFileSync(compileLog, messages.join('\n'));
const warnings = messages.join('\n').split('\n').filter((line) => /\bwarning\b/.test(line)).length;
console.log(`@kotune/native: built ${output}${warnings > 0 ? ` (${warnings} compiler warnings: ${compileLog})` : ''}`);
