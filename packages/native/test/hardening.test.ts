/**
 * The addon's guard rails: every N-API status checked (read off binding.cc, and an exception thrown inside a call
 * reaches the caller), one process-wide set-up shared by worker threads, the thread count from the CPUs this
 * process may use, and index.ts's refusal, before loading, of an addon built from other sources or for
 * instructions this CPU lacks.
 */
import { test as anywhere } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NATIVE_ADDON } from '../src/index.ts';
import { nativeTest as test } from './support.ts';

const index = fileURLToPath(new URL('../src/index.ts', import.meta.url));
const binding = readFileSync(new URL('../src/binding.cc', import.meta.url), 'utf8');

// A reading of the source: it needs no addon.
anywhere('binding.cc checks the status of every N-API call', () => {
  // Each call is inside NAPI_CALL(...) or Ok(...), or compared with napi_ok (an argument of the wrong type, with
  // a message of its own); throwing and reading the last error are the checks themselves.
  const unchecked: string[] = [];
  for (const call of binding.matchAll(/\bnapi_(\w+)\(/g)) {
    if (/^(throw|throw_error|throw_type_error|throw_range_error|get_last_error_info|is_exception_pending)$/.test(call[1]!)) continue;
    let depth = 0;
    let end = call.index! + call[0].length - 1;
    do {
      if (binding[end] === '(') depth++;
      else if (binding[end] === ')') depth--;
      end++;
    } while (depth > 0);
    const before = binding.slice(Math.max(0, call.index! - 20), call.index);
    const after = binding.slice(end, end + 12);
    if (!/(NAPI_CALL\(env, |Ok\(env, )$/.test(before) && !/^\s*!= napi_ok/.test(after)) {
      unchecked.push(`line ${binding.slice(0, call.index).split('\n').length}: napi_${call[1]}`);
    }
  }
  assert.equal(unchecked, []);
});

test('an exception thrown while the addon reads its arguments reaches the caller', () => {
  const kernels = createRequire(import.meta.url)(NATIVE_ADDON);
  const array = () => new Float32Array(4);
  const constants = new Proxy([], {
    get: () => {
      throw new Error('the getter threw');
    },
  });
  assert.throws(() => kernels.adamw(array(), array(), array(), array(), array(), array(), array(), constants), /the getter threw/);
});

test('worker threads load the addon beside the main thread and compute the same bits', () => {
  // Each JavaScript environment runs the addon's init; the BLAS, ISA and thread pool are set up once.
  const product = `
    const g = require(${JSON.stringify(NATIVE_ADDON)});
    const a = Float32Array.from({ length: 64 * 300 }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: 300 * 200 }, (_, i) => Math.cos(i));
    const c = new Float32Array(64 * 200);
    g.gemm(0, a, b, c, 1, 64, 200, 300, false, false);
    const bits = Buffer.from(c.buffer).toString('base64');`;
  const main = `
    const { Worker } = require('node:worker_threads');
    const workers = [0, 1, 2].map(() => new Promise((resolve, reject) => {
      const w = new Worker(${JSON.stringify(`${product}
require('node:worker_threads').parentPort.postMessage(bits);`)}, { eval: true });
      w.on('message', resolve);
      w.on('error', reject);
    }));
    ${product}
    Promise.all(workers).then((theirs) => console.log(theirs.length === 3 && theirs.every((t) => t === bits)));`;
  const run = spawnSync(process.execPath, ['-e', main], { encoding: 'utf8' });
  assert.is(run.status, 0, run.stderr);
  assert.is(run.stdout.trim(), 'true');
});

const threadsScript = `console.log(require(${JSON.stringify(NATIVE_ADDON)}).builtinThreads)`;
const hasTaskset = process.platform === 'linux' && spawnSync('taskset', ['--version']).status === 0;
(hasTaskset ? test : test.skip)('threads: the CPUs this process may run on (taskset -c 0: one); OMP_NUM_THREADS overrides', () => {
  const { OMP_NUM_THREADS, ...env } = process.env;
  assert.is(execFileSync('taskset', ['-c', '0', process.execPath, '-e', threadsScript], { env, encoding: 'utf8' }).trim(), '1');
  assert.is(
    execFileSync('taskset', ['-c', '0', process.execPath, '-e', threadsScript], {
      env: { ...env, OMP_NUM_THREADS: '3' },
      encoding: 'utf8',
    }).trim(),
    '3',
  );
});
if (!hasTaskset) console.log('skip: the taskset test (needs Linux with taskset, util-linux)');

test('KOTUNE_BLAS naming a library without cblas_sgemm: no BLAS, the built-in kernel', () => {
  const script = `const b = require(${JSON.stringify(NATIVE_ADDON)}); console.log(JSON.stringify([b.blasVendor, b.openBlasLibrary]))`;
  for (const library of ['/no/such/libblas.so', process.platform === 'darwin' ? '/usr/lib/libSystem.B.dylib' : 'libm.so.6']) {
    const [vendor, opened] = JSON.parse(
      execFileSync(process.execPath, ['-e', script], { env: { ...process.env, KOTUNE_BLAS: library }, encoding: 'utf8' }),
    );
    assert.ok(opened !== library, `${library} is not a BLAS`);
    if (vendor === '') assert.is(opened, '');
  }
});

/** What loadNative('auto') says in a fresh process that loads the addon at `addon`. */
function loadIn(addon: string): { kernels?: unknown; reason?: string } {
  const code = `import(${JSON.stringify(index)}).then((m) => { const r = m.loadNative('auto'); console.log(JSON.stringify('reason' in r ? r : { kernels: r.kernels.describe() })); })`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', code], {
    env: { ...process.env, KOTUNE_NATIVE_ADDON: addon },
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

test('an addon built from other sources, for a CPU this is not, or without its record is refused before it loads', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-native-refused-'));
  try {
    const addon = join(dir, 'kotune_native.node');
    copyFileSync(NATIVE_ADDON, addon);
    const manifest = JSON.parse(readFileSync(join(NATIVE_ADDON, '..', 'kotune_native.json'), 'utf8'));
    const write = (changes: object) => writeFileSync(join(dir, 'kotune_native.json'), JSON.stringify({ ...manifest, ...changes }));

    write({});
    assert.ok(loadIn(addon).kernels, 'the same addon and record, copied, load');
    write({ sourceHash: '0123456789abcdef' });
    assert.match(loadIn(addon).reason!, /^the addon was built from other sources: rebuild with node .*build\.mjs$/);
    write({ isa: 'x86-64-v4', requires: ['avx512f', 'no_such_feature'] });
    assert.match(
      loadIn(addon).reason!,
      /^the addon was built for x86-64-v4 \(KOTUNE_NATIVE_ISA\) and this CPU (lacks .*no_such_feature|cannot be checked for it): rebuild with node .*build\.mjs$/,
    );
    rmSync(join(dir, 'kotune_native.json'));
    assert.match(
      loadIn(addon).reason!,
      /^the addon has no kotune_native\.json beside it \(an older build\): rebuild with node .*build\.mjs$/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
