/** `kotune doctor` as users run it: the backend decision, native kernels, BLAS, threads, memory limits, GPU needs. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { addonMissing } from '../../native/test/support.ts';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));

function doctor(args: string[] = [], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const { KOTUNE_BACKEND, KOTUNE_NATIVE, ...inherited } = process.env; // the defaults unless a test sets them
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', main, 'doctor', ...args], { env: { ...inherited, ...env } }, (error, out, err) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out, err });
    });
  });
}

test('the default decision, with every section', async () => {
  const { code, out, err } = await doctor();
  assert.is(code, 0, err);
  assert.match(out, /^kotune +\d+\.\d+\.\d+, Node v\d+/m);
  assert.match(out, /^cpu +.*\d+ logical cores, \d+ available to this process.*; container CPU quota: /m);
  assert.match(out, /^memory +[\d.]+ GB total, .*container limit: .*V8 heap limit [\d.]+ GB.*capped at 4 GB/m);
  assert.match(out, /^backend +wasm \(threads \d+, (no )?simd\); products: .* — the default: the first of wasm, cpu that loads$/m);
  if (addonMissing === undefined)
    assert.match(
      out,
      /^native kernels +(OpenBLAS .*|built-in (AVX2|AVX-512|portable C\+\+) kernel), \d+ threads? \(KOTUNE_NATIVE=auto\)$/m,
    );
  else assert.match(out, /^native kernels +none: /m);
  assert.match(out, /^BLAS +(OpenBLAS .* — the default .*|(Apple Accelerate|system BLAS) .* — not the default .*|none.*)$/m);
  assert.match(out, /^threads +OMP_NUM_THREADS=.* OPENBLAS_NUM_THREADS=/m);
  assert.match(
    out,
    /^GPU +not set up\. A GPU needs Linux x86-64, an NVIDIA driver, CUDA 11\.2 and cuDNN 8\.1 .*npm i @tensorflow\/tfjs-node-gpu@4\.22\.0/m,
  );
  assert.match(out, /^ +here: NVIDIA driver (found|not found)/m);
});

test('a forced backend and KOTUNE_NATIVE=off are reported as such', async () => {
  const { code, out, err } = await doctor(['--backend', 'cpu'], { KOTUNE_NATIVE: 'off' });
  assert.is(code, 0, err);
  assert.match(
    out,
    /^backend +cpu \(pure JavaScript\); products: the backend's own \(native kernels: KOTUNE_NATIVE=off\) — asked for \(--backend\)$/m,
  );
  assert.match(out, /^native kernels +none: KOTUNE_NATIVE=off$/m);
});

test.run();
