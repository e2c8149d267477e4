import { execFileSync } from 'node:child_process';
import * as assert from 'uvu/assert';
import { loadDotRows, loadNative, NATIVE_ADDON, type NativeKernels } from '../src/index.ts';
import { addonMissing, nativeTest as test } from './support.ts';

/**
 * Both kernels against a float64 reference of `op(a)·op(b)`. The sizes straddle the built-in kernel's
 * register tiles (12x32 with AVX-512, 6x16 with AVX2 and the portable tile: `builtin-avx2` runs AVX2's where the CPU has both) and cache blocks (KC 256, MC 96, NC 2048), so
 * every edge path and the accumulation over several K blocks run. Tolerance: a float32 sum of k
 * products of entries in [-1, 1) is off by at most ~k·ε·Σ|terms| ≤ k²·ε (ε = 2⁻²³); the check allows
 * 2·k·ε·(Σ|terms| of that entry), while a wrong index or a lost block is off by O(1).
 */
/** The built-in kernel, and its AVX2 tile where this CPU and build have one (not the portable build, NEON on arm64). */
const builtin = addonMissing !== undefined ? undefined : (loadNative('builtin') as { kernels: NativeKernels }).kernels;
const kernels: NativeKernels[] = builtin ? [builtin] : [];
if (builtin && /AVX/.test(builtin.describe())) kernels.push((loadNative('builtin-avx2') as { kernels: NativeKernels }).kernels);
const auto = loadNative('auto');
if ('kernels' in auto && auto.kernels.kernel === 'openblas') kernels.push(auto.kernels);
else console.log('gemm.test: no libopenblas.so.0 here; the OpenBLAS path is not tested');
/** Another system BLAS (Accelerate, libblas.so.3, KOTUNE_BLAS), which only KOTUNE_NATIVE=blas runs. */
if (builtin && !kernels.some((g) => g.kernel === 'openblas')) {
  try {
    kernels.push((loadNative('blas') as { kernels: NativeKernels }).kernels);
  } catch {
    // none here: KOTUNE_NATIVE=blas says so (tested below)
  }
}

let state = 12345;
function uniform(n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    out[i] = state / 2 ** 31 - 1;
  }
  return out;
}

function reference(a: Float32Array, b: Float32Array, batch: number, m: number, n: number, k: number, ta: boolean, tb: boolean) {
  const value = new Float64Array(batch * m * n);
  const magnitude = new Float64Array(batch * m * n);
  for (let e = 0; e < batch; e++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        let abs = 0;
        for (let p = 0; p < k; p++) {
          const x = a[e * m * k + (ta ? p * m + i : i * k + p)]! * b[e * k * n + (tb ? j * k + p : p * n + j)]!;
          s += x;
          abs += Math.abs(x);
        }
        value[e * m * n + i * n + j] = s;
        magnitude[e * m * n + i * n + j] = abs;
      }
    }
  }
  return { value, magnitude };
}

/**
 * [0, 5, 7, 3] is an empty batch (nothing to write). The last two are big enough (≥ 4 MFLOP) for the built-in
 * kernel's threads: one entry split by columns, and three entries shared out whole.
 */
const shapes: [batch: number, m: number, n: number, k: number][] = [
  [1, 1, 1, 1],
  [1, 5, 7, 3],
  [1, 6, 16, 8],
  [1, 12, 32, 8],
  [1, 13, 33, 17],
  [1, 97, 65, 300],
  [1, 30, 2100, 9],
  [3, 11, 19, 5],
  [2, 130, 40, 513],
  [1, 4, 3, 0],
  [0, 5, 7, 3],
  [1, 200, 301, 70],
  [3, 64, 50, 400],
];

for (const gemm of kernels) {
  for (const [batch, m, n, k] of shapes) {
    test(`${gemm.kernel}: ${batch} x [${m}, ${k}] · [${k}, ${n}] with every transpose equals the float64 product`, () => {
      const a = uniform(batch * m * k);
      const b = uniform(batch * k * n);
      for (const [ta, tb] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ] as const) {
        const c = new Float32Array(batch * m * n).fill(Number.NaN); // every entry must be written
        gemm.gemm(a, b, c, batch, m, n, k, ta, tb);
        const { value, magnitude } = reference(a, b, batch, m, n, k, ta, tb);
        for (let i = 0; i < c.length; i++) {
          const tolerance = 2 * Math.max(k, 1) * 2 ** -23 * magnitude[i]! + 1e-30;
          if (!(Math.abs(c[i]! - value[i]!) <= tolerance)) {
            assert.unreachable(`transA=${ta} transB=${tb}: entry ${i} is ${c[i]}, expected ${value[i]} (tolerance ${tolerance})`);
          }
        }
      }
    });
  }

  test(`${gemm.kernel}: arrays that do not match the sizes are refused`, () => {
    const a = new Float32Array(6);
    assert.throws(() => gemm.gemm(a, new Float32Array(6), new Float32Array(3), 1, 2, 2, 3, false, false), /array lengths do not match/);
    assert.throws(
      () => gemm.gemm(a, new Float64Array(6) as unknown as Float32Array, new Float32Array(4), 1, 2, 2, 3, false, false),
      /b must be a Float32Array/,
    );
  });
}

test('the built-in kernel gives the same bits on one thread as on all of them', () => {
  // Threads split C by whole columns (or whole batch entries), so every entry is the same sum in the same order.
  const script = `
    const g = require(${JSON.stringify(NATIVE_ADDON)});
    let s = 12345;
    const u = (n) => Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 31 - 1));
    const out = [];
    for (const [batch, m, n, k] of [[1, 200, 301, 70], [3, 64, 50, 400]]) {
      const c = new Float32Array(batch * m * n);
      g.gemm(0, u(batch * m * k), u(batch * k * n), c, batch, m, n, k, false, true);
      out.push(Buffer.from(c.buffer).toString('base64'));
    }
    console.log(JSON.stringify({ threads: g.builtinThreads, out }));`;
  const run = (threads: string) =>
    JSON.parse(execFileSync(process.execPath, ['-e', script], { env: { ...process.env, OMP_NUM_THREADS: threads }, encoding: 'utf8' }));
  const [one, two] = [run('1'), run('2')];
  assert.equal([one.threads, two.threads], [1, 2]);
  assert.equal(two.out, one.out);
});

test('dotRows: float64 sums over d in order, the same bits as the JavaScript loop; bad sizes are refused', () => {
  const dotRows = loadDotRows()!; // CI builds the addon: must load
  const dim = 13;
  const [nq, n] = [7, 9]; // one group of four queries and three left over
  const q = uniform(nq * dim);
  const x = uniform(n * dim);
  const out = new Float64Array(nq * n).fill(Number.NaN);
  dotRows(q, x, dim, out);
  for (let j = 0; j < nq; j++) {
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += q[j * dim + d]! * x[r * dim + d]!;
      assert.is(out[j * n + r], s, `query ${j}, row ${r}`);
    }
  }
  assert.throws(() => dotRows(q, x, dim, new Float64Array(nq * n - 1)), /one score per pair/);
  assert.throws(() => dotRows(q, x, 0, out), /dim must be a positive integer/);
  assert.throws(() => dotRows(q, x, dim, new Float32Array(nq * n) as unknown as Float64Array), /out a Float64Array/);
});

test('a kernel asked for by name that cannot run is an error; off is no kernel', () => {
  assert.equal(loadNative('off'), { reason: 'KOTUNE_NATIVE=off' });
  assert.throws(() => loadNative('cublas'), /unknown KOTUNE_NATIVE "cublas"/);
  if (!kernels.some((g) => g.kernel === 'openblas')) assert.throws(() => loadNative('openblas'), /no libopenblas.so.0 could be opened/);
  if (!kernels.some((g) => g.kernel === 'openblas' || g.kernel === 'blas'))
    assert.throws(() => loadNative('blas'), /no system BLAS with cblas_sgemm could be opened/);
});

test.run();
