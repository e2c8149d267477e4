/**
 * What trains within the wasm backend's memory: its heap is one WebAssembly memory, which grows up to 4 GiB
 * (emscripten's heap max, 4294901760 bytes) and never shrinks, so its size after training is the run's
 * high-water mark. Each probe trains `kotune train`'s step (training.ts) for two optimizer steps, the second
 * being the largest (parameters + AdamW moments + gradients + activations all live at once), in a process of
 * its own, and reports the heap size, the live tensor bytes, the peak RSS and the seconds per step, or the
 * error when the heap runs out.
 *
 *   pnpm bench memory                         (every probe; about 30 minutes on 1 core)
 *   npx tsx test/bench/memory.bench.ts --probe e5-small-seq256-reranker-1x2
 *
 * Probes are named model-seq-task-shape: `1x4` = 1 query with a group of 4 pairs, `micro1` = micro-batches of 1
 * query (gradient accumulation), `gradcache2` = GradCache mini-batches of 2 texts; `-gc` = with
 * `gradient_checkpointing`; `base` = 768 hidden / 12 heads / 3072 FFN, `medium` = 512 / 8 / 2048, `large` = 1024 /
 * 16 / 4096, 12 layers unless named; `32k` = the fixture's vocabulary. Most probes run with and without
 * checkpointing. `KOTUNE_BACKEND=cpu` runs a probe on the cpu backend (no heap cap; the heap column is then empty).
 *
 * Budget of a model of P parameters before any activation: 4·P bytes of weights, 8·P of AdamW moments and
 * 4·P of gradients (one more gradient-sized sum while micro-batches are accumulated; clipping is folded into
 * the AdamW update, whose temporaries are at most four tensors the size of the parameter being updated): ~16·P.
 * A base-size XLM-R (P = 278M, 250k vocabulary, of which 192M in the word embeddings) needs 4.4 GB: more than
 * wasm's 4 GiB at any batch size. On top come the activations: without checkpointing, tf.js keeps every
 * saved activation and the gradient of every intermediate tensor until the whole backward ends (~2 MB per
 * training token for the e5-small-like model); with it, one layer's worth plus each layer's input (~0.2 MB).
 * The heap column is the WebAssembly memory's size, which emscripten grows in steps: it bounds the high-water
 * mark from above by up to one growth step.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { backendFromArgv, initBackend, tf } from '@kotune/engine';
import { trainingSetup, type Shape, type Task } from './training.ts';

/** `checkpointing`: train with `gradient_checkpointing` (the probe's name ends in `-gc`). */
interface Probe {
  name: string;
  task: Task;
  modelConfig: Record<string, unknown>;
  shape: Shape;
  checkpointing: boolean;
}

const E5_SMALL = {
  hidden_size: 384,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 1536,
  max_position_embeddings: 514,
};
const BASE_32K = {
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  max_position_embeddings: 514,
};
const MEDIUM_32K = {
  hidden_size: 512,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  intermediate_size: 2048,
  max_position_embeddings: 514,
};
const BASE_24L_32K = { ...BASE_32K, num_hidden_layers: 24 };
const LARGE_12L_32K = {
  hidden_size: 1024,
  num_hidden_layers: 12,
  num_attention_heads: 16,
  intermediate_size: 4096,
  max_position_embeddings: 514,
};
const XLMR_BASE = { ...BASE_32K, vocab_size: 250002 };

/** The probe as `[without, with]` gradient checkpointing, or only the variants listed in `only`. */
function variants(name: string, task: Task, modelConfig: Record<string, unknown>, shape: Shape, only?: 'plain' | 'gc'): Probe[] {
  return (only ? [only === 'gc'] : [false, true]).map((checkpointing) => ({
    name: checkpointing ? `${name}-gc` : name,
    task,
    modelConfig,
    shape,
    checkpointing,
  }));
}

const PROBES: Probe[] = [
  ...variants('e5-small-seq256-reranker-1x2', 'reranker', E5_SMALL, { queries: 1, groupSize: 2, seq: 256 }),
  ...variants('e5-small-seq256-reranker-1x4', 'reranker', E5_SMALL, { queries: 1, groupSize: 4, seq: 256 }),
  ...variants('e5-small-seq256-reranker-4x4-micro1', 'reranker', E5_SMALL, { queries: 4, groupSize: 4, seq: 256, microQueries: 1 }),
  ...variants('e5-small-seq256-reranker-4x4', 'reranker', E5_SMALL, { queries: 4, groupSize: 4, seq: 256 }),
  ...variants(
    'e5-small-seq256-embedder-16-gradcache2',
    'embedder',
    E5_SMALL,
    { queries: 16, groupSize: 1, seq: 256, microQueries: 2 },
    'plain',
  ),
  ...variants('e5-small-seq256-embedder-16', 'embedder', E5_SMALL, { queries: 16, groupSize: 1, seq: 256 }),
  ...variants('medium-512h-32k-seq256-reranker-1x4', 'reranker', MEDIUM_32K, { queries: 1, groupSize: 4, seq: 256 }),
  ...variants('base-32k-seq128-reranker-1x2', 'reranker', BASE_32K, { queries: 1, groupSize: 2, seq: 128 }),
  ...variants('base-32k-seq256-reranker-1x4', 'reranker', BASE_32K, { queries: 1, groupSize: 4, seq: 256 }),
  ...variants('base-24l-32k-seq256-reranker-1x4', 'reranker', BASE_24L_32K, { queries: 1, groupSize: 4, seq: 256 }, 'gc'),
  ...variants('large-1024h-32k-seq256-reranker-1x4', 'reranker', LARGE_12L_32K, { queries: 1, groupSize: 4, seq: 256 }, 'gc'),
  ...variants('xlmr-base-250k-seq64-reranker-1x2', 'reranker', XLMR_BASE, { queries: 1, groupSize: 2, seq: 64 }),
];

interface ProbeResult {
  ok: boolean;
  parameters: number;
  steps: number;
  seconds_per_step: number | null;
  /** null off the wasm backend. */
  wasm_heap_mb: number | null;
  tensor_mb: number;
  peak_rss_mb: number;
  error?: string;
}

const MB = 1024 * 1024;
const wasmHeapBytes = (): number | null => (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.length ?? null;

async function runProbe({ task, modelConfig, shape, checkpointing }: Probe): Promise<void> {
  await initBackend({ backend: backendFromArgv() ?? process.env.KOTUNE_BACKEND ?? 'wasm', log: null });
  let parameters = 0;
  let steps = 0;
  let seconds: number | null = null;
  let error: string | undefined;
  try {
    const setup = await trainingSetup(task, { modelConfig }, shape, { gradient_checkpointing: checkpointing });
    parameters = [...setup.model.variables().values()].reduce((n, v) => n + v.size, 0);
    const start = performance.now();
    for (; steps < 2; steps++) setup.step();
    seconds = (performance.now() - start) / 1000 / steps;
  } catch (e) {
    error = (e instanceof Error ? e.message : String(e)).split('\n')[0];
  }
  const heap = wasmHeapBytes();
  const result: ProbeResult = {
    ok: error === undefined,
    parameters,
    steps,
    seconds_per_step: seconds,
    wasm_heap_mb: heap === null ? null : heap / MB,
    tensor_mb: tf.memory().numBytes / MB,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    ...(error ? { error } : {}),
  };
  console.log(JSON.stringify(result));
}

function main(): void {
  const only = process.argv.includes('--probe') ? process.argv[process.argv.indexOf('--probe') + 1] : undefined;
  const probes = PROBES.filter((p) => only === undefined || p.name === only);
  console.log(
    '| probe | params | steps | s/step | wasm heap MB | live tensors MB | peak RSS MB | result |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  );
  for (const probe of probes) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', probe.name], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    });
    const line = r.stdout.trim().split('\n').at(-1) ?? '';
    let result: ProbeResult;
    try {
      result = JSON.parse(line) as ProbeResult;
    } catch {
      // An abort inside the wasm module can take the process down before it reports.
      console.log(
        `| ${probe.name} | | | | | | | crashed (status ${r.status}): ${(
          r.stderr
            .trim()
            .split('\n')
            .find((l) => /Error|Abort|memory/i.test(l)) ?? r.stderr.slice(-200)
        ).trim()} |`,
      );
      continue;
    }
    console.log(
      `| ${probe.name} | ${(result.parameters / 1e6).toFixed(1)}M | ${result.steps} | ${result.seconds_per_step?.toFixed(1) ?? ''} | ` +
        `${result.wasm_heap_mb === null ? '' : result.wasm_heap_mb.toFixed(0)} | ${result.tensor_mb.toFixed(0)} | ${result.peak_rss_mb.toFixed(0)} | ${result.ok ? 'trains' : `fails: ${result.error}`} |`,
    );
  }
}

if (process.argv[2] === '--child') await runProbe(PROBES.find((p) => p.name === process.argv[3])!);
else main();
