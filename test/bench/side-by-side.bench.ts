/**
 * `pnpm bench`: kotune next to PyTorch, in one run on the same machine with one thread each (the wasm backend
 * is single-threaded; torch.set_num_threads(1); OMP/OPENBLAS_NUM_THREADS=1 for both sides, whose products may
 * both run on OpenBLAS), on the same weights and token ids. `KOTUNE_NATIVE` picks our product kernel (the
 * start-up line in the table's heading says which ran). `--threads N` gives both sides N threads instead:
 * PyTorch all of its work, kotune its OpenBLAS products (the wasm backend and the built-in product stay on one).
 *
 *   score            reranker inference: `Reranker.score` of 16 pairs, one batch of 16
 *   train_reranker   one optimizer step of `kotune train`: group CE over 4 groups of G = 4 pairs, AdamW
 *   encode           embedder inference: `Embedder.encode` of 16 texts, one batch of 16
 *   train_embedder   one optimizer step: MNRL (scale 20, in-batch negatives) over 16 (query, positive) pairs,
 *                    CLS pooling + normalise, AdamW
 *
 * every sequence `seq` tokens (no padding), for two configs: the tiny test fixture (seq 64) and an e5-small-like
 * model (12 layers, hidden 384, 12 heads, FFN 1536, the fixture's 32k vocabulary, seq 128) freshly initialised.
 * The embedder's step (16 queries and 16 passages of 128 tokens) runs the wasm heap past its 4 GiB, and the
 * reranker's (16 pairs) comes within 0.7 GiB of it (see memory.bench.ts), so for the e5-small-like config our step
 * takes the batch as a user would on wasm, with the same gradients: the reranker's 4 groups as 4 accumulated
 * micro-batches, the embedder's MNRL through GradCache in mini-batches of 4 texts (one more forward). PyTorch
 * takes the whole batch at once.
 * Our training step is the trainer's own (see training.ts); PyTorch's is torch_xlmr.py, run by Debian's
 * /usr/bin/python3 (skipped with a message when `import torch` fails there). Each side runs each config in a
 * process of its own, so its peak RSS is that config's (both models, their optimizers and activations).
 *
 * Prints a table of tokens/s, steps/s, peak RSS and the ratios ours / PyTorch, then, as its last line, one
 * JSON object: `train_ratio` and `inference_ratio` are the geometric means of the two training and the two
 * inference throughput ratios for the e5-small-like config, `rss_ratio` its peak-RSS ratio; `details` holds
 * every figure. Targets (issue 7, read off here, never asserted): training ≥ 0.5×, inference ≥ 0.6×, RSS ≤ 1.5×.
 *
 *   pnpm bench                       (backend: --backend NAME or KOTUNE_BACKEND, default wasm)
 *   npx tsx test/bench/side-by-side.bench.ts --only e5-small
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rerankerPairs } from '@kotune/data';
import { backendFromArgv, initBackend } from '@kotune/engine';
import { lossKnobs } from '@kotune/trainer';
import { fixed, geometricMean, maxRelativeDifference, runSide, time, tokensOf, type Timing } from './compare.ts';
import { E5_SMALL_LIKE, FIXTURE, trainingSetup, type ModelSource, type Shape, type Task } from './training.ts';

const PYTHON = '/usr/bin/python3';
const TORCH_SCRIPT = fileURLToPath(new URL('torch_xlmr.py', import.meta.url));
const WORKLOADS = ['score', 'train_reranker', 'encode', 'train_embedder'] as const;
type Workload = (typeof WORKLOADS)[number];

interface BenchConfig {
  label: string;
  model: Record<Task, ModelSource>;
  seq: number;
  /** Timed steps after `warmup` untimed ones (the first steps pay for kernel set-up and weight packing). */
  warmup: number;
  trainSteps: number;
  inferenceSteps: number;
  /** Queries per micro-batch (reranker) / texts per GradCache mini-batch (embedder); default the whole batch. */
  microQueries?: Record<Task, number>;
}

const CONFIGS: Record<string, BenchConfig> = {
  tiny: {
    label: 'tiny fixture (2L/32H/4h/64/32k)',
    seq: 64,
    warmup: 2,
    trainSteps: 10,
    inferenceSteps: 20,
    model: { reranker: { folder: join(FIXTURE, 'reranker') }, embedder: { folder: join(FIXTURE, 'embedder') } },
  },
  'e5-small': {
    label: 'e5-small-like (12L/384H/12h/1536/32k)',
    seq: 128,
    warmup: 1,
    trainSteps: 2,
    inferenceSteps: 3,
    microQueries: { reranker: 1, embedder: 4 },
    model: { reranker: { modelConfig: E5_SMALL_LIKE }, embedder: { modelConfig: E5_SMALL_LIKE } },
  },
};
const SHAPES: Record<Task, Omit<Shape, 'seq'>> = { reranker: { queries: 4, groupSize: 4 }, embedder: { queries: 16, groupSize: 1 } };

interface SideResult {
  description: string;
  peak_rss_mb: number;
  results: Record<Workload, Timing>;
}
interface TorchSpec {
  threads: number;
  workloads: Record<string, unknown>[];
}

/** Child process: our side of one config; writes the PyTorch spec (same folders, same ids) next to it. */
async function runOurs(name: string, work: string): Promise<void> {
  const bench = CONFIGS[name]!;
  const info = await initBackend({ backend: backendFromArgv() ?? process.env.KOTUNE_BACKEND ?? 'wasm', log: null });
  const results: Partial<Record<Workload, Timing>> = {};
  const spec: TorchSpec = { threads: threadCount(), workloads: [] };
  for (const task of ['reranker', 'embedder'] as const) {
    const setup = await trainingSetup(task, bench.model[task], {
      ...SHAPES[task],
      seq: bench.seq,
      microQueries: bench.microQueries?.[task],
    });
    const source = bench.model[task];
    const folder = 'folder' in source ? source.folder : join(work, task);
    if (!('folder' in source)) await setup.model.save(folder);

    // Inference first, on the weights PyTorch reads.
    const inferName = task === 'reranker' ? 'score' : 'encode';
    const { model, batch } = setup;
    const pairs = rerankerPairs(batch);
    const inferIds =
      model.kind === 'reranker'
        ? model.tokenizer.encodeRerankerPairs(pairs, { maxLength: bench.seq, padding: 'longest' })
        : model.tokenizer.encodeBatch(batch.passages, { maxLength: bench.seq, padding: 'longest' });
    const infer =
      model.kind === 'reranker'
        ? () => model.score(pairs, { maxLength: bench.seq, batchSize: pairs.length })
        : () => model.encode(batch.passages, { maxLength: bench.seq, batchSize: batch.passages.length });
    const outputs = (await infer()).flatMap((x) => (typeof x === 'number' ? [x] : [...x])); // the first warm-up call
    process.stderr.write(`  kotune ${name} ${inferName}...\n`);
    results[inferName] = { seconds_per_step: await time(bench.warmup - 1, bench.inferenceSteps, infer), ...tokensOf([inferIds]), outputs };

    const trainName = `train_${task}` as const;
    process.stderr.write(`  kotune ${name} ${trainName}...\n`);
    results[trainName] = { seconds_per_step: await time(bench.warmup, bench.trainSteps, () => setup.step()), ...tokensOf(setup.forwards) };

    const common = { model: folder, warmup: bench.warmup };
    spec.workloads.push({ ...common, name: inferName, task: inferName, forwards: [inferIds], steps: bench.inferenceSteps });
    spec.workloads.push({
      ...common,
      name: trainName,
      task: `train-${task}`,
      forwards: setup.forwards,
      steps: bench.trainSteps,
      group_size: setup.config.train_group_size,
      scale: lossKnobs(setup.config).scale,
      learning_rate: setup.config.learning_rate,
      weight_decay: setup.config.weight_decay,
      max_grad_norm: setup.config.max_grad_norm,
    });
    setup.dispose();
  }
  writeFileSync(join(work, 'torch-spec.json'), JSON.stringify(spec));
  const ours: SideResult = {
    description: info.description,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    results: results as Record<Workload, Timing>,
  };
  console.log(JSON.stringify(ours));
}

/** `--threads N` (default 1). */
function threadCount(): number {
  const i = process.argv.indexOf('--threads');
  const n = i >= 0 ? Number(process.argv[i + 1]) : 1;
  if (!Number.isInteger(n) || n < 1) throw new Error(`--threads takes a whole number >= 1, got ${process.argv[i + 1]}`);
  return n;
}

async function main(): Promise<void> {
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1]! : null;
  const names = Object.keys(CONFIGS).filter((n) => only === null || n === only);
  const backendArgs = process.argv.filter(
    (a, i, all) => a.startsWith('--backend') || all[i - 1] === '--backend' || a === '--threads' || all[i - 1] === '--threads',
  );
  const torchAvailable = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  if (!torchAvailable) console.log(`PyTorch: skipped (${PYTHON} -c "import torch" failed): kotune figures only`);
  const threads = String(threadCount());
  const threadEnv = { ...process.env, OMP_NUM_THREADS: threads, OPENBLAS_NUM_THREADS: threads, MKL_NUM_THREADS: threads };

  const details: Record<string, { ours: SideResult; torch: (SideResult & { torch: string; threads: number }) | null }> = {};
  const failures: Record<string, string> = {};
  for (const name of names) {
    const work = mkdtempSync(join(tmpdir(), 'kotune-bench-'));
    try {
      console.log(`${CONFIGS[name]!.label}: kotune...`);
      const ours = runSide<SideResult>(
        process.execPath,
        ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', name, work, ...backendArgs],
        threadEnv,
      );
      let torch = null;
      if (torchAvailable) {
        console.log(`${CONFIGS[name]!.label}: PyTorch...`);
        torch = runSide<SideResult & { torch: string; threads: number }>(PYTHON, [TORCH_SCRIPT, join(work, 'torch-spec.json')], threadEnv);
      }
      details[name] = { ours, torch };
    } catch (error) {
      failures[name] = (error as Error).message.split('\n')[0]!;
      console.log(`${CONFIGS[name]!.label}: failed: ${failures[name]}`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }

  const first = Object.values(details)[0];
  console.log(
    `\nkotune: ${first?.ours.description ?? 'n/a'}; PyTorch: ${first?.torch ? `torch ${first.torch.torch}, ${first.torch.threads} thread${first.torch.threads === 1 ? '' : 's'}` : 'n/a'}`,
  );
  console.log(
    '\n| config | workload | kotune tok/s | PyTorch tok/s | kotune steps/s | PyTorch steps/s | kotune / PyTorch | max rel diff |',
  );
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  const summary: Record<string, Record<string, number | null>> = {};
  for (const [name, failure] of Object.entries(failures)) console.log(`| ${name} | failed: ${failure} | | | | | | |`);
  for (const [name, { ours, torch }] of Object.entries(details)) {
    summary[name] = {};
    const micro = CONFIGS[name]!.microQueries;
    const note: Partial<Record<Workload, string>> = micro
      ? { train_reranker: ` (${SHAPES.reranker.queries / micro.reranker} micro-batches)`, train_embedder: ` (GradCache ${micro.embedder})` }
      : {};
    for (const w of WORKLOADS) {
      const a = ours.results[w];
      const b = torch?.results[w] ?? null;
      const ratio = b ? b.seconds_per_step / a.seconds_per_step : null;
      const diff = b?.outputs && a.outputs ? maxRelativeDifference(a.outputs, b.outputs) : null;
      summary[name]![`${w}_ratio`] = ratio;
      summary[name]![`${w}_tokens_per_s`] = a.tokens / a.seconds_per_step;
      summary[name]![`${w}_torch_tokens_per_s`] = b ? b.tokens / b.seconds_per_step : null;
      if (diff !== null) summary[name]![`${w}_max_rel_diff`] = diff;
      console.log(
        `| ${name} | ${w}${note[w] ?? ''} | ${(a.tokens / a.seconds_per_step).toFixed(0)} | ${b ? (b.tokens / b.seconds_per_step).toFixed(0) : 'n/a'} | ` +
          `${(1 / a.seconds_per_step).toFixed(3)} | ${b ? (1 / b.seconds_per_step).toFixed(3) : 'n/a'} | ${fixed(ratio, 2)} | ${diff === null ? '' : diff.toExponential(1)} |`,
      );
    }
    const rssRatio = torch ? ours.peak_rss_mb / torch.peak_rss_mb : null;
    Object.assign(summary[name]!, { peak_rss_mb: ours.peak_rss_mb, torch_peak_rss_mb: torch?.peak_rss_mb ?? null, rss_ratio: rssRatio });
    console.log(
      `| ${name} | peak RSS (MB) | ${ours.peak_rss_mb.toFixed(0)} | ${torch ? torch.peak_rss_mb.toFixed(0) : 'n/a'} | | | ${fixed(rssRatio, 2)} | |`,
    );
  }

  const e5 = summary['e5-small'];
  const ratioOf = (keys: string[]): number | null => {
    const values = keys.map((k) => e5?.[`${k}_ratio`] ?? null);
    return values.every((v) => v !== null) ? geometricMean(values as number[]) : null;
  };
  const train = ratioOf(['train_reranker', 'train_embedder']);
  const inference = ratioOf(['score', 'encode']);
  const rss = e5?.rss_ratio ?? null;
  console.log(
    `\ne5-small-like, kotune / PyTorch: training ${fixed(train, 2)} (target ≥ 0.5), inference ${fixed(inference, 2)} (target ≥ 0.6), ` +
      `peak RSS ${fixed(rss, 2)} (target ≤ 1.5)`,
  );
  console.log(
    JSON.stringify({
      train_ratio: train,
      inference_ratio: inference,
      rss_ratio: rss,
      backend: first?.ours.description ?? null,
      torch: first?.torch?.torch ?? null,
      threads: threadCount(),
      details: summary,
      ...(Object.keys(failures).length ? { failures } : {}),
    }),
  );
}

if (process.argv[2] === '--child') await runOurs(process.argv[3]!, process.argv[4]!);
else await main();
