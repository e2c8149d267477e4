/**
 * Where a training step's time and memory go on the wasm backend: forward + backward of an e5-small-like
 * XLMRobertaForSequenceClassification (hidden 384, 12 heads, FFN 1536, vocab 32k; seq 128, batch 16, dropout on),
 * timed as a whole (wall and CPU time: the CPU time moves less when the machine is shared), with the wasm heap
 * size and the tensor bytes held at the end of the forward; then once under `tf.profile`, kernel time summed by
 * kernel name and, for products, by operand shapes with their GFLOP/s.
 *
 *   npx tsx packages/xlm-roberta/bench/layer-profile.bench.ts [--layers 2] [--batch 16] [--seq 128] [--reps 2] [--no-profile] [--inference]
 *
 * Fewer layers than the real 12 keep the run short: every layer runs the same kernels, so the per-layer cost
 * scales (12 layers at batch 16 × 128 tokens do not fit in the 4 GiB wasm heap). `--inference` times the
 * forward alone (eval mode, no dropout). The PyTorch figure for the same step comes from the side-by-side bench.
 */
import { tf, initBackend, backendFromArgv } from '@kotune/engine';
import {
  configFromJson,
  classifierParameterSpecs,
  encoderParameterSpecs,
  initParameters,
  XLMRobertaForSequenceClassification,
} from '../src/index.ts';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const layers = flag('layers', 2);
const batch = flag('batch', 16);
const seq = flag('seq', 128);
const reps = flag('reps', 2);
const inference = process.argv.includes('--inference');

const info = await initBackend({ backend: backendFromArgv() ?? 'wasm', log: null });
const config = configFromJson({
  hidden_size: 384,
  num_hidden_layers: layers,
  num_attention_heads: 12,
  intermediate_size: 1536,
  vocab_size: 32000,
  max_position_embeddings: 514,
  layer_norm_eps: 1e-12,
  type_vocab_size: 1,
});
const params = new Map([
  ...[...initParameters(encoderParameterSpecs(config, { addPoolingLayer: false }), config, 1)].map(
    ([k, v]) => [`roberta.${k}`, v] as const,
  ),
  ...initParameters(classifierParameterSpecs(config), config, 2),
]);
const model = new XLMRobertaForSequenceClassification(config, params);
const variables = [...params.values()];
const ids = tf.tensor2d(
  Array.from({ length: batch }, (_, b) => Array.from({ length: seq }, (_, s) => (s === 0 ? 0 : 4 + ((b * 7919 + s * 104729) % 31000)))),
  undefined,
  'int32',
);
const mask = tf.onesLike(ids);

let step = 0;
/** Tensor bytes held at the end of the forward: the activations kept for the backward, and the parameters. */
let afterForwardBytes = 0;
function run(): void {
  step += 1;
  if (inference) {
    tf.tidy(() => model.forward(ids, mask).dataSync());
    return;
  }
  const { value, grads } = tf.variableGrads(() => {
    const loss = tf.mean(model.forward(ids, mask, { training: true, seed: step })) as tf.Scalar;
    afterForwardBytes = tf.memory().numBytes;
    return loss;
  }, variables);
  for (const g of Object.values(grads)) g.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
}

run(); // warm-up
// CPU time next to wall time: the machine is shared, and CPU time moves less with the other load.
const start = performance.now();
const cpuStart = process.cpuUsage();
for (let r = 0; r < reps; r++) run();
const ms = (performance.now() - start) / reps;
const cpu = process.cpuUsage(cpuStart);
const cpuMs = (cpu.user + cpu.system) / 1000 / reps;
const tokens = batch * seq;
const h = 384,
  ffn = 1536;
const flopsForward = layers * (2 * tokens * (4 * h * h + 2 * h * ffn) + 2 * 2 * batch * seq * seq * h);
const flops = inference ? flopsForward : 3 * flopsForward;
// The wasm heap only grows, so its size after the steps is the peak the step needed.
const heap =
  info.name === 'wasm'
    ? `, wasm heap ${((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.byteLength / 2 ** 20).toFixed(0)} MiB`
    : '';
console.log(
  `${info.description}; layers ${layers}, batch ${batch}, seq ${seq}, ${inference ? 'forward' : 'forward+backward'}: ${ms.toFixed(0)} ms/step (CPU ${cpuMs.toFixed(0)} ms), ${(ms / layers).toFixed(0)} ms/layer (incl. embeddings), ${(flops / ms / 1e6).toFixed(1)} GFLOP/s on the matmul FLOPs${heap}${inference ? '' : `, ${(afterForwardBytes / 2 ** 20).toFixed(0)} MiB of tensors after the forward`}`,
);

if (!process.argv.includes('--no-profile')) {
  const profile = await tf.profile(() => run());
  // Products are split by operand shapes, to read each one's GFLOP/s.
  const byKernel = new Map<string, { ms: number; calls: number; flops: number }>();
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  for (const k of profile.kernels) {
    const product = k.name === 'BatchMatMul' || k.name === 'KotuneNativeMatMul';
    const key = product ? `${k.name} ${k.inputShapes.map((s) => `[${s}]`).join('·')}` : k.name;
    const entry = byKernel.get(key) ?? { ms: 0, calls: 0, flops: 0 };
    entry.ms += Number(k.kernelTimeMs) || 0;
    entry.calls += 1;
    if (product) {
      // a: batch·m·k, b: batch·k·n, out: batch·m·n values, whichever operand is transposed: k² = |a|·|b| / (|out|·batch).
      const [a, b] = k.inputShapes as number[][];
      const out = k.outputShapes[0] as number[];
      entry.flops += 2 * size(out) * Math.sqrt((size(a!) * size(b!)) / (size(out) * size(out.slice(0, -2))));
    }
    byKernel.set(key, entry);
  }
  const total = [...byKernel.values()].reduce((s, e) => s + e.ms, 0);
  console.log(`kernel time ${total.toFixed(0)} ms in ${profile.kernels.length} kernels`);
  for (const [name, e] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms)) {
    const rate = e.flops > 0 ? `  ${(e.flops / e.ms / 1e6).toFixed(1)} GFLOP/s` : '';
    console.log(
      `${name.padEnd(28)} ${e.ms.toFixed(1).padStart(9)} ms ${String(e.calls).padStart(6)} calls ${((100 * e.ms) / total).toFixed(1).padStart(5)}%${rate}`,
    );
  }
}
