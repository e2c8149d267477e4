/**
 * GradCache memory: one MNRL training step (anchors + positives, 64 tokens each) on a small random
 * XLM-R (hidden 128, 4 layers, 4 heads, FFN 512, dropout on) at
 *   plain  batch 16              (the reference: what fits without GradCache)
 *   cached batch 256 / mini 16   (target: peak ≤ 1.5× the plain batch-16 peak)
 *   plain  batch 256             (for scale: what GradCache avoids; on wasm it does not fit the 4 GiB heap)
 * Each configuration runs in its own process (the wasm heap never shrinks, so RSS peaks cannot be
 * compared within one process). Reported: tf.memory() peak bytes above the model's own tensors (via
 * tf.profile), the peak process RSS, and the wall time of the step.
 *
 *   pnpm bench gradcache [-- --backend cpu]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { backendFromArgv, initBackend, tf } from '@kotune/engine';
import { Embedder } from '@kotune/xlm-roberta';
import { cachedMultipleNegativesRankingLoss, miniBatches, multipleNegativesRankingLoss } from '../src/index.ts';

const TOKENIZER_DIR = fileURLToPath(new URL('../../../test/fixtures/xlmr-tiny/embedder', import.meta.url));
const CONFIG = { hidden_size: 128, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 512, max_position_embeddings: 130 };
const SEQ = 64;
const TARGET = 1.5;

interface Result {
  label: string;
  peakTfBytes: number;
  peakRss: number;
  seconds: number;
  loss: number;
}

/** Deterministic token ids (no tokenizer needed): `<s>`, 62 ids in the vocabulary, `</s>`. */
function texts(n: number, offset: number): number[][] {
  return Array.from({ length: n }, (_, i) => [
    0,
    ...Array.from({ length: SEQ - 2 }, (_, j) => 5 + (((i + offset) * 7919 + j * 104729) % 30000)),
    2,
  ]);
}

async function child(mode: 'plain' | 'cached', batch: number, mini: number): Promise<Result> {
  await initBackend({ backend: backendFromArgv() ?? 'wasm', log: null });
  const model = Embedder.random(CONFIG, TOKENIZER_DIR, 1, { pooling: 'cls', normalize: true });
  const params = model.variables();
  const anchors = texts(batch, 0);
  const positives = texts(batch, 100000);
  type Chunk = { ids: number[][]; seed: number };
  const embed = (c: Chunk) =>
    tf.tidy(() => {
      const ids = tf.tensor2d(c.ids, undefined, 'int32');
      return model.forward(ids, tf.onesLike(ids), { training: true, seed: c.seed });
    });
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 5);
  const base = tf.memory().numBytes;
  const started = performance.now();
  let loss = 0;
  const profile = await tf.profile(() => {
    if (mode === 'cached') {
      const cols = [anchors, positives].map((col, c) => miniBatches(col, mini).map((ids, k) => ({ ids, seed: 1000 * c + k })));
      const out = cachedMultipleNegativesRankingLoss(cols, embed, params);
      loss = out.loss;
      tf.dispose([...out.grads.values()]);
    } else {
      const out = tf.variableGrads(
        () => multipleNegativesRankingLoss(embed({ ids: anchors, seed: 0 }), [embed({ ids: positives, seed: 1000 })]),
        [...params.values()],
      );
      loss = out.value.dataSync()[0]!;
      tf.dispose([out.value, ...Object.values(out.grads)]);
    }
  });
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  model.dispose();
  const label = mode === 'cached' ? `cached batch ${batch} / mini ${mini}` : `plain batch ${batch}`;
  return { label, peakTfBytes: profile.peakBytes - base, peakRss, seconds, loss };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

if (process.argv[2] === '--child') {
  const [mode, batch, mini] = [process.argv[3] as 'plain' | 'cached', Number(process.argv[4]), Number(process.argv[5])];
  process.stdout.write(`RESULT ${JSON.stringify(await child(mode, batch, mini))}\n`);
} else {
  const backendArgs = process.argv.slice(2);
  const run = (mode: string, batch: number, mini: number): Result | string => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', mode, String(batch), String(mini), ...backendArgs],
      { encoding: 'utf8', maxBuffer: 2 ** 26 },
    );
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (line) return JSON.parse(line.slice(7));
    // A wasm abort (the heap ran out) can be followed by other errors from the dying process: it is the reason.
    const errors = r.stderr.split('\n').filter((l) => /Error|Aborted/.test(l) && l.length < 300);
    const reason = (errors.find((l) => /Aborted|RuntimeError/.test(l)) ?? errors.at(-1))?.slice(0, 160) ?? `exit ${r.status}`;
    return `${mode} batch ${batch}: failed (${reason})`;
  };
  console.log(
    `model: random XLM-R ${JSON.stringify(CONFIG)}, ${SEQ} tokens per text, MNRL on (anchor, positive), dropout on, backend ${backendFromArgv() ?? 'wasm'}`,
  );
  const results = [run('plain', 16, 16), run('cached', 256, 16), run('plain', 256, 256)];
  console.log('| configuration | tf peak above weights | peak RSS | step time | loss |\n| --- | --- | --- | --- | --- |');
  for (const r of results) {
    console.log(
      typeof r === 'string'
        ? `| ${r} | | | | |`
        : `| ${r.label} | ${mib(r.peakTfBytes)} | ${mib(r.peakRss)} | ${r.seconds.toFixed(1)} s | ${r.loss.toFixed(4)} |`,
    );
  }
  const [small, cached] = results;
  if (typeof small === 'string' || typeof cached === 'string') throw new Error('the plain batch-16 and cached runs must both succeed');
  const tfRatio = cached.peakTfBytes / small.peakTfBytes;
  const rssRatio = cached.peakRss / small.peakRss;
  console.log(
    `cached 256/16 vs plain 16: tf peak ${tfRatio.toFixed(2)}x, RSS ${rssRatio.toFixed(2)}x (target ≤ ${TARGET}x): ${tfRatio <= TARGET && rssRatio <= TARGET ? 'OK' : 'MISSED'}`,
  );
  if (!(tfRatio <= TARGET && rssRatio <= TARGET)) process.exitCode = 1;
}
