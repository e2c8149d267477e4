import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initBackend, parseBackendName, tf } from '../src/index.ts';

test('auto selection falls through the missing native packages to wasm and says why', async () => {
  const lines: string[] = [];
  const info = await initBackend({ backend: undefined, log: (l) => lines.push(l) });
  // CI has no libtensorflow, so the native packages are absent; wasm must load.
  assert.is(info.name, 'wasm');
  assert.match(info.description, /^backend: wasm \(threads \d+, (simd|no simd)\); products: (OpenBLAS .*, \d+ threads?|built-in AVX(2|-512) kernel, \d+ threads?)$/);
  assert.is(lines.at(-1), info.description);
  assert.is(info.skipped.length, 2);
  for (const reason of info.skipped) assert.not.match(reason, /\n/);
  assert.ok(tf.grad((x: tf.Tensor) => x.square())(tf.scalar(3)).arraySync() === 6, 'gradients are registered');
});

test('forcing a backend by name switches to it', async () => {
  const info = await initBackend({ backend: 'cpu', log: null });
  assert.is(info.name, 'cpu');
  assert.is(tf.getBackend(), 'cpu');
  const back = await initBackend({ backend: 'wasm', log: null });
  assert.is(tf.getBackend(), 'wasm');
  assert.is(back.name, 'wasm');
});

test('forcing an unavailable native backend is a clear error, not a crash', async () => {
  try {
    await initBackend({ backend: 'tfjs-node-gpu', log: null });
    assert.unreachable('tfjs-node-gpu cannot load here');
  } catch (err) {
    assert.match(String(err), /backend tensorflow-gpu was requested but cannot be used/);
  }
});

test('the native kernels are picked by name, says which runs, and a kernel that cannot run is an error', async () => {
  const builtin = await initBackend({ backend: 'wasm', native: 'builtin', log: null });
  assert.match(builtin.description, /; products: built-in AVX(2|-512) kernel, \d+ threads?$/);
  const off = await initBackend({ backend: 'cpu', native: 'off', log: null });
  assert.match(off.description, /^backend: cpu \(pure JavaScript\); products: the backend's own \(native kernels: KOTUNE_NATIVE=off\)$/);
  try {
    await initBackend({ backend: 'wasm', native: 'mkl', log: null });
    assert.unreachable('mkl is not a kernel');
  } catch (err) {
    assert.match(String(err), /unknown KOTUNE_NATIVE "mkl": use one of auto, openblas, builtin, builtin-avx2, off/);
  }
});

test('backend names and aliases', () => {
  assert.is(parseBackendName('GPU'), 'tensorflow-gpu');
  assert.is(parseBackendName('node'), 'tensorflow');
  assert.throws(() => parseBackendName('metal'), /unknown backend "metal"/);
});

test.run();
