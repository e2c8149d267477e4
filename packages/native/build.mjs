// Builds build/kotune_native.node from src/*.cc (one file per job, see src/kernels.h) with the system C++
// compiler against Node's own headers (no node-gyp: it would download headers, and this needs a compiler call
// per file and one to link). Runs at `pnpm install`; where it cannot build (no compiler, no headers, Windows) it
// says why in one line (the compiler's own output goes to build/compile.log) and exits 0, and the engine keeps
// the backends' own kernels. Plain JavaScript: it runs before the workspace's TypeScript tooling is installed.
//
// Linux and macOS, x86-64, arm64 and the rest: on x86-64 the AVX2 and AVX-512 kernels are compiled with target
// attributes and chosen at run time by the CPU (one addon for every x86-64 CPU); elsewhere, and with
// KOTUNE_NATIVE_ISA=portable, every kernel is portable C++ (arm64: NEON through the compiler's vectoriser).
// Next to the addon, kotune_native.json records what it was built from and for: src/index.ts refuses an addon
// built from other sources, or for instructions this CPU lacks.
//
//   CXX                        the compiler (default: g++, else clang++, else c++; clang++ first on macOS)
//   KOTUNE_NATIVE_ISA          auto (default) | portable | x86-64-v3 | x86-64-v4 (the whole addon compiled for
//                              that x86-64 level: refused at load on a CPU without it)
//   KOTUNE_NATIVE_SANITIZE=1   an AddressSanitizer + UndefinedBehaviorSanitizer build (for the tests)
//   KOTUNE_NATIVE_BUILD_DIR    where to write (default: build/ next to this file)
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sourceHash } from './src/source-hash.mjs';

const started = Date.now();
const here = dirname(fileURLToPath(import.meta.url));
const outputDir = process.env.KOTUNE_NATIVE_BUILD_DIR ? resolve(process.env.KOTUNE_NATIVE_BUILD_DIR) : join(here, 'build');
const output = join(outputDir, 'kotune_native.node');
/** What the addon was built from and for; src/index.ts reads it before it loads the addon. */
const manifest = join(outputDir, 'kotune_native.json');
/** The compiler's own output: kept out of the install log, which gets one line, but not lost. */
const compileLog = join(outputDir, 'compile.log');
const run = promisify(execFile);

/** The CPU features (as Linux's /proc/cpuinfo names them) each x86-64 level adds to the one below. */
const X86_LEVEL_FEATURES = {
  'x86-64-v2': ['cx16', 'lahf_lm', 'popcnt', 'sse4_1', 'sse4_2', 'ssse3'],
  'x86-64-v3': ['avx', 'avx2', 'bmi1', 'bmi2', 'f16c', 'fma', 'abm', 'movbe', 'xsave'],
  'x86-64-v4': ['avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl'],
};
const levels = Object.keys(X86_LEVEL_FEATURES);
const x86Level = (level) => ({
  flags: [`-march=${level}`],
  requires: levels.slice(0, levels.indexOf(level) + 1).flatMap((l) => X86_LEVEL_FEATURES[l]),
  x64Only: true,
});
const ISAS = {
  auto: { flags: [], requires: [] },
  portable: { flags: ['-DKOTUNE_PORTABLE'], requires: [] },
  'x86-64-v3': x86Level('x86-64-v3'),
  'x86-64-v4': x86Level('x86-64-v4'),
};

function skip(reason) {
  // an addon from earlier sources must not load as if it were this one
  rmSync(output, { force: true });
  rmSync(manifest, { force: true });
  console.log(`@kotune/native: not built (${reason}); the TensorFlow.js backends run their own kernels`);
  process.exit(0);
}

function nodeHeaders() {
  const candidates = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    resolve(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean);
  return candidates.find((dir) => existsSync(join(dir, 'node_api.h')));
}

/** CXX, else the first of the usual compilers that runs; undefined if none does. */
async function findCompiler() {
  if (process.env.CXX) return process.env.CXX;
  for (const name of process.platform === 'darwin' ? ['clang++', 'c++', 'g++'] : ['g++', 'clang++', 'c++']) {
    try {
      await run(name, ['--version']);
      return name;
    } catch {
      // not this one
    }
  }
  return undefined;
}

if (process.platform === 'win32') skip('Windows is not supported yet: it needs MSVC and node.lib; WSL builds it');
const isaName = process.env.KOTUNE_NATIVE_ISA || 'auto';
const isa = ISAS[isaName];
if (!isa) skip(`unknown KOTUNE_NATIVE_ISA "${isaName}": use one of ${Object.keys(ISAS).join(', ')}`);
if (isa.x64Only && process.arch !== 'x64') skip(`KOTUNE_NATIVE_ISA=${isaName} is for x86-64, this is ${process.arch}`);
const headers = nodeHeaders();
if (!headers) skip("Node's headers (node_api.h) were not found; set npm_config_nodedir to Node's install prefix");
const compiler = await findCompiler();
if (!compiler) skip('no C++ compiler found (tried g++, clang++ and c++; CXX may name one)');

const sanitize = process.env.KOTUNE_NATIVE_SANITIZE === '1';
const hash = sourceHash(join(here, 'src'));
const flags = [
  ...(sanitize ? ['-O1', '-g', '-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=undefined'] : ['-O3']),
  '-std=c++17',
  '-ffp-contract=off',
  '-fPIC',
  '-Wall',
  '-Wextra',
  ...isa.flags,
];
const defines = [`-DKOTUNE_SOURCE_HASH="${hash}"`, `-DKOTUNE_BUILD_ISA="${isaName}"`];
// macOS: a bundle whose N-API symbols resolve against the node binary that loads it (no libdl there to link).
const link =
  process.platform === 'darwin'
    ? ['-bundle', '-undefined', 'dynamic_lookup']
    : ['-shared', ...(process.platform === 'linux' ? ['-ldl'] : [])];

// Each source compiles in a process of its own, all at once (the files are independent), then one call links them.
const sources = readdirSync(join(here, 'src'))
  .filter((f) => f.endsWith('.cc'))
  .sort();
const objects = join(outputDir, `objects.${process.pid}.tmp`);
const temporary = `${output}.${process.pid}.tmp`;
/** What the compiler says, file by file, for build/compile.log. */
const messages = [];
/** Runs the compiler; its output is logged, and a failure throws with the first error line. */
async function compile(args, label) {
  try {
    const { stdout, stderr } = await run(compiler, args, { maxBuffer: 64 << 20 });
    if (`${stdout}${stderr}` !== '') messages.push(`== ${label}\n${stdout}${stderr}`);
  } catch (err) {
    const text = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    messages.push(`== ${label}\n${text}`);
    const reason =
      err.code === 'ENOENT'
        ? `${compiler} is not installed (CXX may name another C++17 compiler)`
        : `${compiler} failed: ${(text.split('\n').find((line) => /\berror\b/.test(line)) ?? err.message.split('\n')[0]).trim()}`;
    throw new Error(reason);
  }
}
mkdirSync(objects, { recursive: true });
try {
  const compiled = await Promise.all(
    sources.map(async (source) => {
      const object = join(objects, source.replace(/\.cc$/, '.o'));
      await compile([...flags, ...defines, `-I${headers}`, '-c', join(here, 'src', source), '-o', object], source);
      return object;
    }),
  );
  await compile([...flags, ...compiled, '-o', temporary, ...link], 'link');
  renameSync(temporary, output);
} catch (err) {
  rmSync(temporary, { force: true });
  writeFileSync(compileLog, messages.join('\n'));
  skip(`${err.message} (full output: ${compileLog})`);
} finally {
  rmSync(objects, { recursive: true, force: true });
}
writeFileSync(compileLog, messages.join('\n'));
writeFileSync(
  manifest,
  `${JSON.stringify({ sourceHash: hash, isa: isaName, requires: isa.requires, platform: process.platform, arch: process.arch, compiler, flags, sanitize }, null, 2)}\n`,
);
const warnings = messages
  .join('\n')
  .split('\n')
  .filter((line) => /\bwarning\b/.test(line)).length;
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(
  `@kotune/native: built ${output} (${process.platform}-${process.arch}, ${isaName === 'auto' ? '' : `KOTUNE_NATIVE_ISA=${isaName}, `}${sanitize ? 'sanitizers, ' : ''}${seconds} s)` +
    `${warnings > 0 ? ` (${warnings} compiler warnings: ${compileLog})` : ''}`,
);
