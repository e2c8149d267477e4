/**
 * Inference throughput of the reranker (pairs/s) and the embedder (texts/s), forward passes on fixed token ids
 * (tokenization excluded), for the tiny fixture config and a 12-layer / 384-hidden / 12-head / 1536-FFN / 32k-vocab
 * config, next to the same math in PyTorch (`inference_torch.py`, Debian's torch 1.13 at /usr/bin/python3; skipped
 * with a message when torch is missing). Also prints the largest difference between the two implementations.
 *
 *   pnpm bench xlm-roberta            (backend: KOTUNE_BACKEND or --backend, default wasm)
 *   npx tsx packages/xlm-roberta/bench/inference.bench.ts --only-large   (skip the tiny config)
 *
 * Batch 16 for the large config: at batch 32 × 128 tokens the wasm backend aborted inside the engine's batched
 * product (wasmBatchMatMul), reported to the engine.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf, initBackend, backendFromArgv } from '@kotune/engine';
import { Embedder, Reranker } from '../src/index.ts';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/xlmr-tiny/', import.meta.url));
const PYTHON = '/usr/bin/python3';
const work = mkdtempSync(join(tmpdir(), 'xlmr-bench-'));

interface Workload { name: string; items: number; seq: number; batchSize: number; repeats: number }

const info = await initBackend({ backend: backendFromArgv() ?? process.env.KOTUNE_BACKEND ?? 'wasm', log: null });
const torchAvailable = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
console.log(`${info.description}; PyTorch: ${torchAvailable ? 'torch at /usr/bin/python3' : 'not available (import torch failed): JS numbers only'}`);

/** Token ids: `<s>`, random ids of the vocabulary, `</s>` (no padding: every item is `seq` long). */
function randomIds(items: number, seq: number, vocab: number, seed: number): number[][] {
  let state = seed;
  const next = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) % (vocab - 5)) + 4;
  return Array.from({ length: items }, () => [0, ...Array.from({ length: seq - 2 }, next), 2]);
}

function measureJs(forward: (ids: tf.Tensor2D, mask: tf.Tensor2D) => tf.Tensor, ids: number[][], w: Workload): { perSecond: number; outputs: number[] } {
  const run = () => {
    const outputs: number[] = [];
    for (let i = 0; i < ids.length; i += w.batchSize) {
      const rows = ids.slice(i, i + w.batchSize);
      outputs.push(...tf.tidy(() => {
        const t = tf.tensor2d(rows, undefined, 'int32');
        return forward(t, tf.onesLike(t)).dataSync();
      }));
    }
    return outputs;
  };
  const outputs = run(); // warm-up (kernel set-up, XNNPACK packing)
  const start = performance.now();
  for (let r = 0; r < w.repeats; r++) run();
  return { perSecond: (w.repeats * ids.length) / ((performance.now() - start) / 1000), outputs };
}

function measureTorch(folder: string, kind: string, ids: number[][], w: Workload): { perSecond: number; threads: number; outputs: number[] } | null {
  if (!torchAvailable) return null;
  const specPath = join(work, 'spec.json');
  writeFileSync(specPath, JSON.stringify({ folder, kind, ids, batch_size: w.batchSize, repeats: w.repeats }));
  const r = spawnSync(PYTHON, [fileURLToPath(new URL('inference_torch.py', import.meta.url)), specPath], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`inference_torch.py failed:\n${r.stderr}`);
  const result = JSON.parse(r.stdout);
  return { perSecond: result.items_per_s, threads: result.threads, outputs: result.outputs };
}

function maxRelativeDifference(a: number[], b: number[]): number {
  let diff = 0;
  let scale = 0;
  a.forEach((x, i) => {
    diff = Math.max(diff, Math.abs(x - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  });
  return diff / scale;
}

const rows: string[][] = [];
async function bench(label: string, folders: { reranker: string; embedder: string }, w: Workload): Promise<void> {
  const reranker = await Reranker.load(folders.reranker, { log: null });
  const embedder = await Embedder.load(folders.embedder, { log: null });
  const ids = randomIds(w.items, w.seq, reranker.config.vocabSize, 17);
  for (const [kind, unit, model] of [['reranker', 'pairs/s', reranker], ['embedder', 'texts/s', embedder]] as const) {
    const js = measureJs((i, m) => model.forward(i, m), ids, w);
    const torch = measureTorch(kind === 'reranker' ? folders.reranker : folders.embedder, kind, ids, w);
    rows.push([label, kind, `B=${w.batchSize} S=${w.seq}`, `${js.perSecond.toFixed(1)} ${unit}`,
      torch ? `${torch.perSecond.toFixed(1)} ${unit} (${torch.threads} thread${torch.threads > 1 ? 's' : ''})` : 'n/a',
      torch ? (js.perSecond / torch.perSecond).toFixed(2) : 'n/a',
      torch ? maxRelativeDifference(js.outputs, torch.outputs).toExponential(1) : 'n/a']);
    console.log(rows.at(-1)!.join(' | '));
  }
  reranker.dispose();
  embedder.dispose();
}

try {
  if (!process.argv.includes('--only-large')) await bench('tiny (2L/32H)', { reranker: `${FIXTURE}reranker`, embedder: `${FIXTURE}embedder` }, { name: 'tiny', items: 64, seq: 64, batchSize: 32, repeats: 10 });
  const config = { hidden_size: 384, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 1536, max_position_embeddings: 514, type_vocab_size: 1, layer_norm_eps: 1e-5 };
  const folders = { reranker: join(work, 'reranker'), embedder: join(work, 'embedder') };
  const reranker = Reranker.random(config, FIXTURE, 1);
  await reranker.save(folders.reranker);
  reranker.dispose();
  const embedder = Embedder.random(config, FIXTURE, 2);
  await embedder.save(folders.embedder);
  embedder.dispose();
  await bench('12L/384H/12h/1536/32k', folders, { name: 'small', items: 32, seq: 128, batchSize: 16, repeats: 2 });
  console.log('\n| model | head | batch | kotune (JS) | PyTorch | JS / PyTorch | max rel diff |\n| --- | --- | --- | --- | --- | --- | --- |');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
