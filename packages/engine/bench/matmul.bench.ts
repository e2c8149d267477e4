/**
 * GFLOP/s of `linear` and `matMul` against the plain `tf.matMul` formulation they replace, forward and
 * forward+backward, for XLM-R's Linear shapes and attention products: ours on the backend's own products
 * (custom gradients, XNNPACK-only products on wasm: `KOTUNE_NATIVE=off`) and on the native kernels
 * (`auto`: OpenBLAS if present, else the built-in kernel; the heading says which). `pnpm bench matmul`
 * (about 3 minutes: the plain backward runs at ~1 GFLOP/s).
 *
 * FLOPs: a product [M,K]·[K,N] is 2·M·K·N; forward+backward with gradients for both operands is
 * three such products. Time is wall clock on this process's one wasm thread, read back with dataSync.
 */
import { initBackend, linear, matMul, tf } from '../src/index.ts';

interface Case {
  name: string;
  flops: number;
  inputs: () => tf.Tensor[];
  plain: (...xs: tf.Tensor[]) => tf.Tensor;
  ours: (...xs: tf.Tensor[]) => tf.Tensor;
}

function linearCase(tokens: number, inF: number, outF: number): Case {
  return {
    name: `linear [${tokens},${inF}]·[${outF},${inF}]ᵀ`,
    flops: 2 * tokens * inF * outF,
    inputs: () => [tf.randomNormal([tokens, inF]), tf.randomNormal([outF, inF]), tf.randomNormal([outF])],
    plain: (x, w, b) => tf.add(tf.matMul(x!, w!, false, true), b!),
    ours: (x, w, b) => linear(x!, w as tf.Tensor2D, b as tf.Tensor1D),
  };
}

function attentionCase(batchHeads: number, seq: number, head: number, which: 'q·kᵀ' | 'probs·v'): Case {
  const transposeB = which === 'q·kᵀ';
  return {
    name: `attention ${which} [${batchHeads},${seq},${transposeB ? head : seq}]·[${batchHeads},${seq},${head}]${transposeB ? 'ᵀ' : ''}`,
    flops: 2 * batchHeads * seq * seq * head,
    inputs: () => [tf.randomNormal([batchHeads, seq, transposeB ? head : seq]), tf.randomNormal([batchHeads, seq, head])],
    plain: (a, b) => tf.matMul(a!, b!, false, transposeB),
    ours: (a, b) => matMul(a!, b!, false, transposeB),
  };
}

/** Mean milliseconds of `run` over `reps` after one warm-up. */
function time(run: () => tf.Tensor[], reps: number): number {
  const once = () => {
    const outs = run();
    for (const t of outs) t.dataSync();
    tf.dispose(outs);
  };
  once();
  const start = performance.now();
  for (let i = 0; i < reps; i++) once();
  return (performance.now() - start) / reps;
}

function measure(c: Case, f: (...xs: tf.Tensor[]) => tf.Tensor, reps: number): { fwd: number; fwdBwd: number } {
  const xs = c.inputs();
  const fwd = time(() => [f(...xs)], reps);
  const grad = tf.grads((...ys: tf.Tensor[]) => tf.sum(f(...ys)));
  const fwdBwd = time(() => grad(xs), reps);
  tf.dispose(xs);
  return { fwd: c.flops / fwd / 1e6, fwdBwd: (3 * c.flops) / fwdBwd / 1e6 };
}

async function report(backend: 'wasm' | 'cpu', cases: Case[], repsPlain: number, repsOurs: number): Promise<void> {
  const rows = [];
  for (const c of cases) {
    await initBackend({ backend, native: 'off', log: null });
    const plain = measure(c, c.plain, repsPlain);
    const own = measure(c, c.ours, repsOurs);
    await initBackend({ backend, native: 'auto', log: null });
    rows.push({ c, plain, own, native: measure(c, c.ours, repsOurs) });
  }
  console.log(
    `\n${backend}: GFLOP/s (higher is better); plain = tf.matMul and autodiff, own = ours on the backend's products, native = ours on the native kernels`,
  );
  const head = (label: string) => `${`${label} plain`.padStart(12)} ${'own'.padStart(7)} ${'native'.padStart(7)}`;
  console.log(`${'shape'.padEnd(46)} ${head('fwd')}   ${head('fwd+bwd')}`);
  const f = (x: number) => x.toFixed(2).padStart(7);
  for (const { c, plain, own, native } of rows) {
    console.log(
      `${c.name.padEnd(46)} ${f(plain.fwd).padStart(12)} ${f(own.fwd)} ${f(native.fwd)}   ${f(plain.fwdBwd).padStart(12)} ${f(own.fwdBwd)} ${f(native.fwdBwd)}`,
    );
  }
}

console.log((await initBackend({ backend: 'wasm', native: 'auto', log: null })).description);
await report(
  'wasm',
  [
    linearCase(2048, 384, 1536),
    linearCase(2048, 768, 768),
    linearCase(2048, 768, 3072),
    linearCase(2048, 3072, 768),
    attentionCase(16 * 12, 128, 64, 'q·kᵀ'),
    attentionCase(16 * 12, 128, 64, 'probs·v'),
  ],
  1,
  3,
);
await report('cpu', [linearCase(256, 384, 384), attentionCase(2 * 12, 128, 64, 'q·kᵀ'), attentionCase(2 * 12, 128, 64, 'probs·v')], 2, 2);
