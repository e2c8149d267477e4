/**
 * What `withWeightCache` saves `linear`: the weight's transpose (forward) and detached copy (backward), and
 * XNNPACK's packing of each, made once instead of on every call. For e5-small's Linear shapes at 2048 rows (an
 * inference batch of 16 × 128 tokens) and 512 rows (a training micro-batch of 4 × 128), forward and
 * forward+backward, without and with the cache. `pnpm bench weight-cache` (about a minute). It runs on the
 * backend's own products (`native: 'off'`): the native kernels take `wᵀ` as a flag and leave nothing to cache.
 *
 * Time is the process's CPU time (it moves less than wall time on a shared machine), the best of 3 rounds of
 * `reps` calls, the two variants interleaved; each variant is warmed up first (with the cache, that call makes
 * the copies, so the timed calls show the steady state of a long `encode` or of later micro-batches).
 */
import { initBackend, linear, tf, withWeightCache } from '../src/index.ts';

/** CPU milliseconds per call of `run` over `reps` calls after one untimed call, all inside `wrap`. */
function cpuMs(run: () => void, reps: number, wrap: (f: () => number) => number): number {
  return wrap(() => {
    run();
    const start = process.cpuUsage();
    for (let i = 0; i < reps; i++) run();
    const used = process.cpuUsage(start);
    return (used.user + used.system) / 1000 / reps;
  });
}

const info = await initBackend({ backend: 'wasm', native: 'off', log: null });
console.log(`${info.description}: linear CPU ms per call, best of 3 (lower is better)`);
console.log(
  `${'x · wᵀ'.padEnd(30)} ${'fwd'.padStart(8)} ${'cached'.padStart(8)} ${'saved'.padStart(6)}   ${'fwd+bwd'.padStart(8)} ${'cached'.padStart(8)} ${'saved'.padStart(6)}`,
);
for (const rows of [2048, 512]) {
  for (const [inF, outF] of [
    [384, 1536],
    [384, 384],
    [1536, 384],
  ] as const) {
    const x = tf.randomNormal([rows, inF]);
    const w = tf.variable(tf.randomNormal([outF, inF]));
    const b = tf.variable(tf.randomNormal([outF]));
    const forward = () => tf.tidy(() => void linear(x, w as tf.Tensor2D, b as tf.Tensor1D).dataSync());
    const grads = tf.grads((x: tf.Tensor) => tf.sum(linear(x, w as tf.Tensor2D, b as tf.Tensor1D)));
    const backward = () => tf.tidy(() => void grads([x])[0]!.dataSync());
    const reps = rows === 2048 ? 4 : 12;
    const row = [forward, backward].map((run) => {
      const plain: number[] = [];
      const cached: number[] = [];
      for (let round = 0; round < 3; round++) {
        plain.push(cpuMs(run, reps, (f) => f()));
        cached.push(cpuMs(run, reps, (f) => withWeightCache(f)));
      }
      return [Math.min(...plain), Math.min(...cached)] as const;
    });
    const cells = row.map(
      ([p, c]) => `${p.toFixed(1).padStart(8)} ${c.toFixed(1).padStart(8)} ${`${((1 - c / p) * 100).toFixed(0)}%`.padStart(6)}`,
    );
    console.log(`${`[${rows},${inF}]·[${outF},${inF}]ᵀ`.padEnd(30)} ${cells.join('   ')}`);
    tf.dispose([x, w, b]);
  }
}
