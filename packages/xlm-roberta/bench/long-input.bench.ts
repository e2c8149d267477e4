/**
 * `pnpm bench long-input`: scoring and encoding ONE input of 8,192 tokens (bge-m3 and bge-reranker-v2-m3 take that
 * many), with memory. The native encoder layer's attention never holds more than a block of 64 x 512 scores a
 * thread, so the memory is the weights plus the activations of one layer; the op-by-op model would hold
 * [heads, 8192, 8192] scores (3.2 GB a layer at 12 heads) and does not fit the wasm backend's 4 GB.
 *
 * Model: XLM-R base layers (12 x 768, 12 heads, FFN 3072) with 8,194 positions (bge-m3's table), the fixture's 32k
 * vocabulary, freshly initialised. Each task runs in a process of its own; prints the time of one call, the
 * process's resident memory after loading and at its peak, and the wasm heap, then one JSON line.
 *
 *   pnpm bench long-input                       (backend: --backend NAME or KOTUNE_BACKEND, default wasm)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendFromArgv, initBackend, tf } from '@kotune/engine';
import { Embedder, Reranker } from '../src/index.ts';

const SELF = fileURLToPath(import.meta.url);
const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/xlmr-tiny/', import.meta.url));
const TOKENS = 8192;
const CONFIG = { hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, max_position_embeddings: 8194 };

const mb = (bytes: number) => Math.round(bytes / 2 ** 20);

/** Child: one task on one 8,192-token input (random ids, `<s>` ... `</s>`), timed once after loading. */
async function child(task: 'score' | 'encode', folder: string): Promise<void> {
  const info = await initBackend({ backend: backendFromArgv() ?? process.env.KOTUNE_BACKEND ?? 'wasm', log: null });
  const model = task === 'score' ? await Reranker.load(folder, { log: null }) : await Embedder.load(folder, { log: null });
  const ids = [0, ...Array.from({ length: TOKENS - 2 }, (_, i) => 5 + ((i * 7919) % 31000)), 2];
  const loadedRss = process.memoryUsage().rss;
  const start = performance.now();
  const output = tf.tidy(() => {
    const inputIds = tf.tensor2d([ids], [1, TOKENS], 'int32');
    const mask = tf.ones([1, TOKENS], 'int32') as tf.Tensor2D;
    return (model instanceof Reranker ? model.forward(inputIds, mask) : model.forward(inputIds, mask)).dataSync();
  });
  const seconds = (performance.now() - start) / 1000;
  const heap =
    tf.getBackend() === 'kotune-wasm' ? mb((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length) : null;
  console.log(
    JSON.stringify({
      task,
      backend: info.description,
      seconds,
      loaded_rss_mb: mb(loadedRss),
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      wasm_heap_mb: heap,
      finite: Array.from(output).every(Number.isFinite),
    }),
  );
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'kotune-bench-long-'));
  const results: unknown[] = [];
  try {
    await initBackend({ backend: backendFromArgv() ?? process.env.KOTUNE_BACKEND ?? 'wasm', log: null });
    const folders = { score: join(work, 'reranker'), encode: join(work, 'embedder') };
    const reranker = Reranker.random(CONFIG, FIXTURE, 1);
    await reranker.save(folders.score);
    reranker.dispose();
    const embedder = Embedder.random(CONFIG, FIXTURE, 2);
    await embedder.save(folders.encode);
    embedder.dispose();
    for (const task of ['score', 'encode'] as const) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', SELF, '--child', task, folders[task], ...process.argv.slice(2)], {
        encoding: 'utf8',
      });
      if (r.status !== 0)
        throw new Error(
          `${task} failed:\n${r.stderr
            .split('\n')
            .filter((l) => l.length < 300)
            .join('\n')}`,
        );
      const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
      console.log(
        `${task}, one input of ${TOKENS} tokens: ${(result.seconds as number).toFixed(1)} s, RSS ${result.loaded_rss_mb} MB after loading, ` +
          `peak ${result.peak_rss_mb} MB, wasm heap ${result.wasm_heap_mb ?? '-'} MB, outputs finite: ${result.finite}`,
      );
      results.push(result);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(JSON.stringify({ tokens: TOKENS, config: CONFIG, results }));
}

const at = process.argv.indexOf('--child');
if (at >= 0) await child(process.argv[at + 1] as 'score' | 'encode', process.argv[at + 2]!);
else await main();
