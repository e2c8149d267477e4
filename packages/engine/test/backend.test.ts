import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KOTUNE_CPU } from '../src/cpu-backend.ts';
import { initBackend, parseBackendName, tf } from '../src/index.ts';
import { KOTUNE_WASM } from '../src/wasm-kernels.ts';
import { addonMissing, nativeTest } from '../../native/test/support.ts';

test('by default wasm runs, with the native kernels where the addon is built; tfjs-node(-gpu) is never tried unasked', async () => {
  const lines: string[] = [];
  const info = await initBackend({ backend: undefined, log: (l) => lines.push(l) });
  assert.is(info.name, 'wasm');
  const products =
    addonMissing === undefined
      ? /(OpenBLAS .*, \d+ threads?|built-in AVX(2|-512) kernel, \d+ threads?)/
      : /the backend's own \(native kernels: .*\)/;
  assert.match(info.description, new RegExp(`^backend: wasm \\(threads \\d+, (simd|no simd)\\); products: ${products.source}$`));
  assert.equal(lines, [info.description]);
  assert.equal(info.skipped, []);
  assert.ok(
    tf
      .grad((x: tf.Tensor) => x.square())(tf.scalar(3))
      .arraySync() === 6,
    'gradients are registered',
  );
});

test('forcing a backend by name switches to it', async () => {
  const info = await initBackend({ backend: 'cpu', log: null });
  assert.is(info.name, 'cpu');
  assert.is(tf.getBackend(), KOTUNE_CPU);
  const back = await initBackend({ backend: 'wasm', log: null });
  assert.is(tf.getBackend(), KOTUNE_WASM);
  assert.is(back.name, 'wasm');
});

test("kotune's cpu replacements are kotune's only: a tfjs user who selects cpu runs tfjs's own Add on the same tensors", async () => {
  await initBackend({ backend: 'cpu', log: null });
  assert.is(tf.findBackend('cpu'), tf.findBackend(KOTUNE_CPU), 'one backend instance, two names');
  for (const kernel of ['Add', 'Multiply', 'RealDiv']) {
    assert.is.not(tf.getKernel(kernel, KOTUNE_CPU)!.kernelFunc, tf.getKernel(kernel, 'cpu')!.kernelFunc, kernel);
  }
  const x = tf.fill([1 << 16], 1.5); // made on kotune's backend (gradient-sized: the native pass), used by tfjs's own
  const ours = x.add(x);
  await tf.setBackend('cpu');
  const theirs = x.add(x);
  assert.equal(Array.from(theirs.dataSync()), Array.from(ours.dataSync()));
  tf.dispose([x, ours, theirs]);
  await initBackend({ backend: 'cpu', log: null });
  assert.is(tf.getBackend(), KOTUNE_CPU);
});

test('forcing an unavailable native backend is a clear error, not a crash', async () => {
  try {
    await initBackend({ backend: 'tfjs-node-gpu', log: null });
    assert.unreachable('tfjs-node-gpu cannot load here');
  } catch (err) {
    assert.match(String(err), /backend tensorflow-gpu was requested but cannot be used/);
  }
});

nativeTest('the native kernels are picked by name, says which runs, and a kernel that cannot run is an error', async () => {
  const builtin = await initBackend({ backend: 'wasm', native: 'builtin', log: null });
  assert.match(builtin.description, /; products: built-in AVX(2|-512) kernel, \d+ threads?$/);
  const off = await initBackend({ backend: 'cpu', native: 'off', log: null });
  assert.match(off.description, /^backend: cpu \(pure JavaScript\); products: the backend's own \(native kernels: KOTUNE_NATIVE=off\)$/);
  try {
    await initBackend({ backend: 'wasm', native: 'mkl', log: null });
    assert.unreachable('mkl is not a kernel');
  } catch (err) {
    assert.match(String(err), /unknown KOTUNE_NATIVE "mkl": use one of auto, openblas, blas, builtin, builtin-avx2, off/);
  }
});

/**
 * On the cpu backend with the native kernels, glibc's malloc keeps freed blocks for reuse (`keepFreedMemory`): a
 * second 256 MB array after the first is freed takes its pages from the heap, where a fresh mapping faults in every
 * 4 KB page again (65,536 faults). Each case runs in a process of its own (the setting is process-wide); a user's
 * own MALLOC_* setting leaves the allocator alone.
 */
const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
(glibc ? nativeTest : test.skip)('cpu: freed memory is kept for reuse, unless the user set malloc themselves (glibc)', () => {
  const child = `
    import { initBackend } from './packages/engine/src/index.ts';
    const { description } = await initBackend({ backend: 'cpu', log: null });
    const faultsOfNewArray = () => {
      const before = process.resourceUsage().minorPageFault;
      new Float32Array(1 << 26).fill(1);
      return process.resourceUsage().minorPageFault - before;
    };
    faultsOfNewArray();
    globalThis.gc();
    console.log(JSON.stringify({ description, faults: faultsOfNewArray() }));`;
  const run = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', child], {
      cwd: new URL('../../../', import.meta.url),
      encoding: 'utf8',
      env: { ...process.env, KOTUNE_NATIVE: 'builtin', ...env },
    });
    assert.is(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { description: string; faults: number };
  };
  const kept = run({});
  assert.match(kept.description, /; freed memory kept for reuse \(glibc malloc\)$/);
  const own = run({ MALLOC_TRIM_THRESHOLD_: String(128 * 1024) });
  assert.not.match(own.description, /freed memory/);
  assert.ok(own.faults > 60000, `a fresh mapping faults in each page: ${own.faults} faults`);
  assert.ok(kept.faults < own.faults / 10, `reused: ${kept.faults} faults against ${own.faults}`);
});

test('backend names and aliases', () => {
  assert.is(parseBackendName('GPU'), 'tensorflow-gpu');
  assert.is(parseBackendName('node'), 'tensorflow');
  assert.throws(() => parseBackendName('metal'), /unknown backend "metal"/);
});

test.run();
