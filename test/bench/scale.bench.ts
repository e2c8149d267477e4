/**
 * `pnpm bench scale`: the seed models at their true size, kotune next to PyTorch in one run, on the same weights,
 * token ids, batches and thread count (issue 14). Two configs with XLM-R's 250,002-token vocabulary, freshly
 * initialised (seeded) and saved once, then loaded by both sides (ids from the shipped 32k tokenizer):
 *
 *   base    12 layers, hidden 768, 12 heads, FFN 3072    (278M parameters: bge-reranker-base, multilingual-e5-base)
 *   large   24 layers, hidden 1024, 16 heads, FFN 4096   (560M: bge-reranker-large, bge-m3, multilingual-e5-large)
 *
 * Workloads (every sequence 256 tokens, no padding):
 *   score            reranker inference: 16 pairs in one batch
 *   train_reranker   one optimizer step of `kotune train`: 1 query, a group of G = 4, group CE, clipping to 1, AdamW
 *   encode           embedder inference: 16 texts in one batch
 *   train_embedder   one optimizer step: MNRL (scale 20, in-batch negatives, CLS + normalise) over 8 (query, positive)
 *                    pairs, clipping, AdamW; for large through GradCache in mini-batches of 4 texts on both sides
 *                    (PyTorch's activations for 4,096 tokens of large would take ~10 GB on top of its 9 GB of
 *                    weights, gradients and moments: past what this 24 GB machine can share)
 *
 * Each side runs each (config, thread count) in a process of its own, with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS /
 * MKL_NUM_THREADS = N and torch.set_num_threads(N): peak RSS is that process's (both models one after the other,
 * their optimizers and activations, loading included). kotune runs on the `cpu` backend (wasm's 4 GB cannot hold
 * weights + gradients + AdamW moments at these sizes; `--backend NAME` or KOTUNE_BACKEND to choose another), its
 * training step is the trainer's own (training.ts); PyTorch's is torch_xlmr.py.
 *
 * PyTorch: the newest torch on the machine. The bench makes a venv under the repo's ignored `.cache/torch-venv` with
 * torch and numpy from the machine's local wheel mirror (`PIP_INDEX_URL=file:///opt/pypi/simple`, only when that
 * folder exists: nothing is downloaded from the internet), else Debian's /usr/bin/python3 with python3-torch, else
 * it prints why and gives kotune's figures alone.
 *
 * Prints, per thread count, a table of tokens/s, steps/s, the optimizer step alone (clipping + AdamW) and peak RSS
 * for both sides with the ratios kotune / PyTorch (throughput: PyTorch's seconds over ours; RSS: ours over
 * PyTorch's), the optimizer step's bandwidth (32 bytes a parameter: the norm reads g, AdamW reads p, g, m, v and
 * writes p, m, v) next to this machine's copy bandwidth, then one JSON line: `base_train_ratio`,
 * `large_train_ratio` (geometric means of the two training ratios over the thread counts run), `base_inference_ratio`,
 * `large_inference_ratio` (the same for score and encode), `large_rss_ratio` (the worst over the thread counts) and
 * `details`. Targets (read here, never asserted): training and inference ≥ 1.0, RSS ≤ 1.0.
 *
 *   pnpm bench scale                                   (base and large, 1 and 2 threads: about an hour)
 *   npx tsx test/bench/scale.bench.ts --only base --threads 1
 *   npx tsx test/bench/scale.bench.ts --only smoke       (a 2-layer model: checks the bench in a minute)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendFromArgv, initBackend } from '@kotune/engine';
import { lossKnobs } from '@kotune/trainer';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import { fixed, geometricMean, maxRelativeDifference, runSide, time, tokensOf, type Timing } from './compare.ts';
import { benchTexts, FIXTURE, trainingSetup, type Task } from './training.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TORCH_SCRIPT = fileURLToPath(new URL('torch_xlmr.py', import.meta.url));
const VENV = join(ROOT, '.cache', 'torch-venv');
const WHEEL_MIRROR = '/opt/pypi/simple';
const DEBIAN_PYTHON = '/usr/bin/python3';

const SEQ = 256;
const INFERENCE_ITEMS = 16;
const WORKLOADS = ['score', 'train_reranker', 'encode', 'train_embedder'] as const;
type Workload = (typeof WORKLOADS)[number];

interface ScaleConfig {
  label: string;
  model: Record<string, unknown>;
  /** Texts per GradCache mini-batch for the embedder's step (both sides), or none. */
  embedderMiniBatch?: number;
  warmup: number;
  trainSteps: number;
  inferenceSteps: number;
}

const XLMR = { vocab_size: 250002, max_position_embeddings: 514, type_vocab_size: 1, layer_norm_eps: 1e-5 };
const CONFIGS: Record<string, ScaleConfig> = {
  base: {
    label: 'XLM-R base (12L/768H/12h/3072/250k)',
    warmup: 1,
    trainSteps: 2,
    inferenceSteps: 2,
    model: { ...XLMR, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072 },
  },
  large: {
    label: 'XLM-R large (24L/1024H/16h/4096/250k)',
    warmup: 1,
    trainSteps: 1,
    inferenceSteps: 2,
    embedderMiniBatch: 4,
    model: { ...XLMR, hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16, intermediate_size: 4096 },
  },
  // A few seconds a side, to check the bench itself (only with --only smoke).
  smoke: {
    label: 'smoke (2L/64H/4h/128/250k)',
    warmup: 1,
    trainSteps: 1,
    inferenceSteps: 1,
    embedderMiniBatch: 4,
    model: { ...XLMR, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 128 },
  },
};
const DEFAULT_CONFIGS = ['base', 'large'];
const SHAPES: Record<Task, { queries: number; groupSize: number }> = {
  reranker: { queries: 1, groupSize: 4 },
  embedder: { queries: 8, groupSize: 1 },
};

interface SideResult {
  description: string;
  peak_rss_mb: number;
  parameters: Record<Task, number>;
  results: Record<Workload, Timing>;
}
type TorchResult = SideResult & { torch: string; threads: number };

/** `--NAME VALUE` or undefined. */
function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function threadCounts(): number[] {
  const given = flag('threads');
  if (given === undefined) return [1, 2];
  const n = Number(given);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--threads takes a whole number >= 1, got ${given}`);
  return [n];
}

// ---- child processes ---------------------------------------------------------------------------------------

/** Child: a fresh reranker and embedder of `name`'s config, saved under `work` (the weights both sides load). */
async function prepare(name: string, work: string): Promise<void> {
  await initBackend({ backend: 'cpu', log: null });
  const config = CONFIGS[name]!.model;
  const reranker = Reranker.random(config, FIXTURE, 1);
  await reranker.save(join(work, 'reranker'));
  reranker.dispose();
  const embedder = Embedder.random(config, FIXTURE, 2, { pooling: 'cls', normalize: true });
  await embedder.save(join(work, 'embedder'));
  embedder.dispose();
  console.log('{}');
}

/** Child: our side of one config at the thread count in the environment; writes the PyTorch spec next to it. */
async function runOurs(name: string, work: string): Promise<void> {
  const bench = CONFIGS[name]!;
  const info = await initBackend({ backend: backendFromArgv() ?? process.env.KOTUNE_BACKEND ?? 'cpu', log: null });
  const results: Partial<Record<Workload, Timing>> = {};
  const parameters: Partial<Record<Task, number>> = {};
  const spec = { threads: Number(process.env.OMP_NUM_THREADS), workloads: [] as Record<string, unknown>[] };
  const inferenceTexts = benchTexts(2 * INFERENCE_ITEMS, 1000);
  for (const task of ['reranker', 'embedder'] as const) {
    const folder = join(work, task);
    const micro = task === 'embedder' ? bench.embedderMiniBatch : undefined;
    const setup = await trainingSetup(task, { folder }, { ...SHAPES[task], seq: SEQ, microQueries: micro });
    const { model } = setup;
    parameters[task] = [...model.variables().values()].reduce((n, v) => n + v.size, 0);

    const inferName = task === 'reranker' ? 'score' : 'encode';
    const pairs = Array.from({ length: INFERENCE_ITEMS }, (_, i): [string, string] => [inferenceTexts[2 * i]!, inferenceTexts[2 * i + 1]!]);
    const texts = inferenceTexts.slice(0, INFERENCE_ITEMS);
    const inferIds =
      model.kind === 'reranker'
        ? model.tokenizer.encodeRerankerPairs(pairs, { maxLength: SEQ, padding: 'longest' })
        : model.tokenizer.encodeBatch(texts, { maxLength: SEQ, padding: 'longest' });
    if (inferIds.inputIds.some((row) => row.length !== SEQ)) throw new Error(`bench texts must fill ${SEQ} tokens`);
    const infer =
      model.kind === 'reranker'
        ? () => model.score(pairs, { maxLength: SEQ, batchSize: INFERENCE_ITEMS })
        : () => model.encode(texts, { maxLength: SEQ, batchSize: INFERENCE_ITEMS });
    const outputs = (await infer()).flatMap((x) => (typeof x === 'number' ? [x] : [...x])); // the first warm-up call
    process.stderr.write(`  kotune ${name} ${inferName}...\n`);
    results[inferName] = { seconds_per_step: await time(bench.warmup - 1, bench.inferenceSteps, infer), ...tokensOf([inferIds]), outputs };

    const trainName = `train_${task}` as const;
    process.stderr.write(`  kotune ${name} ${trainName}...\n`);
    const optimizerSeconds: number[] = [];
    const seconds = await time(bench.warmup, bench.trainSteps, () => {
      setup.step();
      optimizerSeconds.push(setup.optimizerSeconds);
    });
    const timed = optimizerSeconds.slice(bench.warmup);
    results[trainName] = {
      seconds_per_step: seconds,
      optimizer_seconds: timed.reduce((a, b) => a + b, 0) / timed.length,
      ...tokensOf(setup.forwards),
    };

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
      ...(micro ? { mini_batch_size: micro } : {}),
    });
    setup.dispose();
  }
  writeFileSync(join(work, 'torch-spec.json'), JSON.stringify(spec));
  const ours: SideResult = {
    description: info.description,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    parameters: parameters as Record<Task, number>,
    results: results as Record<Workload, Timing>,
  };
  console.log(JSON.stringify(ours));
}

// ---- PyTorch ------------------------------------------------------------------------------------------------

/** A Python with torch and numpy, and how it was found; or why there is none. */
function torchPython(): { python: string; how: string } | { reason: string } {
  const works = (python: string) =>
    existsSync(python) && spawnSync(python, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0;
  const venvPython = join(VENV, 'bin', 'python');
  if (works(venvPython)) return { python: venvPython, how: `venv ${VENV}` };
  if (existsSync(WHEEL_MIRROR)) {
    console.log(`PyTorch: making ${VENV} with torch and numpy from the local wheel mirror (${WHEEL_MIRROR}; about a minute)...`);
    mkdirSync(join(ROOT, '.cache'), { recursive: true });
    const made =
      spawnSync('python3', ['-m', 'venv', '--clear', VENV], { stdio: 'inherit' }).status === 0 &&
      spawnSync(join(VENV, 'bin', 'pip'), ['install', '--quiet', 'torch', 'numpy'], {
        stdio: 'inherit',
        env: { ...process.env, PIP_INDEX_URL: `file://${WHEEL_MIRROR}`, PIP_DISABLE_PIP_VERSION_CHECK: '1' },
      }).status === 0;
    if (made && works(venvPython)) return { python: venvPython, how: `venv ${VENV} (made now from ${WHEEL_MIRROR})` };
    console.log("PyTorch: the venv could not be made from the mirror; trying Debian's python3");
  }
  if (works(DEBIAN_PYTHON)) return { python: DEBIAN_PYTHON, how: `${DEBIAN_PYTHON} (Debian's python3-torch)` };
  return { reason: `no local wheel mirror at ${WHEEL_MIRROR} and no torch for ${DEBIAN_PYTHON} (Debian: apt-get install python3-torch)` };
}

/** Copy bandwidth of this machine: GB/s read + written by Float32Array.set (memmove) over 1 GiB, best of 3. */
function copyBandwidth(): number {
  const n = 2 ** 28;
  const from = new Float32Array(n).fill(1);
  const to = new Float32Array(n).fill(0);
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    to.set(from);
    best = Math.min(best, (performance.now() - start) / 1000);
  }
  return (2 * 4 * n) / best / 1e9;
}

// ---- main ---------------------------------------------------------------------------------------------------

interface Run {
  ours: SideResult;
  torch: TorchResult | null;
}

async function main(): Promise<void> {
  const only = flag('only');
  const names = only === undefined ? DEFAULT_CONFIGS : Object.keys(CONFIGS).filter((n) => n === only);
  if (names.length === 0) throw new Error(`--only takes one of ${Object.keys(CONFIGS).join(', ')}`);
  const threads = threadCounts();
  const backendArgs = process.argv.filter((a, i, all) => a.startsWith('--backend') || all[i - 1] === '--backend');
  const torch = torchPython();
  if ('reason' in torch) console.log(`PyTorch: skipped (${torch.reason}): kotune figures only`);
  else console.log(`PyTorch: ${torch.how}`);
  const me = fileURLToPath(import.meta.url);

  const runs: Record<string, Record<number, Run>> = {};
  const failures: Record<string, string> = {};
  for (const name of names) {
    const work = mkdtempSync(join(tmpdir(), 'kotune-scale-'));
    try {
      console.log(`${CONFIGS[name]!.label}: weights...`);
      runSide(process.execPath, ['--import', 'tsx', me, '--prepare', name, work]);
      runs[name] = {};
      for (const n of threads) {
        const env = { ...process.env, OMP_NUM_THREADS: String(n), OPENBLAS_NUM_THREADS: String(n), MKL_NUM_THREADS: String(n) };
        try {
          console.log(`${CONFIGS[name]!.label}, ${n} thread${n === 1 ? '' : 's'}: kotune...`);
          const ours = runSide<SideResult>(process.execPath, ['--import', 'tsx', me, '--child', name, work, ...backendArgs], env);
          let theirs: TorchResult | null = null;
          if (!('reason' in torch)) {
            console.log(`${CONFIGS[name]!.label}, ${n} thread${n === 1 ? '' : 's'}: PyTorch...`);
            theirs = runSide<TorchResult>(torch.python, [TORCH_SCRIPT, join(work, 'torch-spec.json')], env);
          }
          runs[name]![n] = { ours, torch: theirs };
        } catch (error) {
          failures[`${name}/${n}`] = (error as Error).message.split('\n')[0]!;
          console.log(`${name}, ${n} threads: failed: ${failures[`${name}/${n}`]}`);
        }
      }
    } catch (error) {
      failures[name] = (error as Error).message.split('\n')[0]!;
      console.log(`${name}: failed: ${failures[name]}`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }

  const bandwidth = copyBandwidth();
  const first = Object.values(runs).flatMap((r) => Object.values(r))[0];
  console.log(
    `\nkotune: ${first?.ours.description ?? 'n/a'}; PyTorch: ${first?.torch ? `torch ${first.torch.torch}` : 'n/a'}; ` +
      `copy bandwidth ${bandwidth.toFixed(1)} GB/s (one thread, read + write)`,
  );
  const details: Record<string, Record<string, Record<string, number | string | null>>> = {};
  for (const n of threads) {
    console.log(`\n${n} thread${n === 1 ? '' : 's'} a side\n`);
    console.log(
      '| config | workload | kotune tok/s | PyTorch tok/s | kotune steps/s | PyTorch steps/s | kotune / PyTorch | optimizer s: kotune | PyTorch | max rel diff |',
    );
    console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const name of names) {
      const run = runs[name]?.[n];
      if (!run) {
        console.log(`| ${name} | failed: ${failures[`${name}/${n}`] ?? failures[name] ?? ''} | | | | | | | | |`);
        continue;
      }
      const d: Record<string, number | string | null> = {};
      const note: Partial<Record<Workload, string>> = CONFIGS[name]!.embedderMiniBatch
        ? { train_embedder: ` (GradCache ${CONFIGS[name]!.embedderMiniBatch})` }
        : {};
      for (const w of WORKLOADS) {
        const a = run.ours.results[w];
        const b = run.torch?.results[w] ?? null;
        const ratio = b ? b.seconds_per_step / a.seconds_per_step : null;
        const diff = b?.outputs && a.outputs ? maxRelativeDifference(a.outputs, b.outputs) : null;
        Object.assign(d, {
          [`${w}_ratio`]: ratio,
          [`${w}_tokens_per_s`]: a.tokens / a.seconds_per_step,
          [`${w}_torch_tokens_per_s`]: b ? b.tokens / b.seconds_per_step : null,
          ...(a.optimizer_seconds !== undefined
            ? { [`${w}_optimizer_s`]: a.optimizer_seconds, [`${w}_torch_optimizer_s`]: b?.optimizer_seconds ?? null }
            : {}),
          ...(diff !== null ? { [`${w}_max_rel_diff`]: diff } : {}),
        });
        console.log(
          `| ${name} | ${w}${note[w] ?? ''} | ${(a.tokens / a.seconds_per_step).toFixed(1)} | ${b ? (b.tokens / b.seconds_per_step).toFixed(1) : 'n/a'} | ` +
            `${(1 / a.seconds_per_step).toFixed(3)} | ${b ? (1 / b.seconds_per_step).toFixed(3) : 'n/a'} | ${fixed(ratio, 2)} | ` +
            `${fixed(a.optimizer_seconds, 2)} | ${fixed(b?.optimizer_seconds, 2)} | ${diff === null ? '' : diff.toExponential(1)} |`,
        );
      }
      const rssRatio = run.torch ? run.ours.peak_rss_mb / run.torch.peak_rss_mb : null;
      Object.assign(d, { peak_rss_mb: run.ours.peak_rss_mb, torch_peak_rss_mb: run.torch?.peak_rss_mb ?? null, rss_ratio: rssRatio });
      console.log(
        `| ${name} | peak RSS (MB) | ${run.ours.peak_rss_mb.toFixed(0)} | ${run.torch ? run.torch.peak_rss_mb.toFixed(0) : 'n/a'} | | | ${fixed(rssRatio, 2)} | | | |`,
      );
      // The optimizer step's bandwidth on the reranker (its parameters): 32 bytes a parameter.
      const optimizer = run.ours.results.train_reranker.optimizer_seconds;
      if (optimizer) d.optimizer_gb_per_s = (32 * run.ours.parameters.reranker) / optimizer / 1e9;
      const torchOptimizer = run.torch?.results.train_reranker.optimizer_seconds;
      if (torchOptimizer) d.torch_optimizer_gb_per_s = (32 * run.ours.parameters.reranker) / torchOptimizer / 1e9;
      d.parameters = run.ours.parameters.reranker;
      details[name] = { ...details[name], [`threads_${n}`]: d };
    }
    for (const name of names) {
      const d = details[name]?.[`threads_${n}`];
      if (d?.optimizer_gb_per_s) {
        console.log(
          `${name}: optimizer step over ${((d.parameters as number) / 1e6).toFixed(0)}M parameters: kotune ${fixed(d.optimizer_gb_per_s as number, 1)} GB/s, ` +
            `PyTorch ${fixed(d.torch_optimizer_gb_per_s as number | null, 1)} GB/s (copy bandwidth ${bandwidth.toFixed(1)} GB/s)`,
        );
      }
    }
  }

  const ratio = (name: string, workloads: Workload[]): number | null => {
    const values = threads.flatMap((n) => workloads.map((w) => details[name]?.[`threads_${n}`]?.[`${w}_ratio`] ?? null));
    return values.length > 0 && values.every((v) => typeof v === 'number') ? geometricMean(values as number[]) : null;
  };
  const worstRss = (name: string): number | null => {
    const values = threads.map((n) => details[name]?.[`threads_${n}`]?.rss_ratio ?? null);
    return values.every((v) => typeof v === 'number') ? Math.max(...(values as number[])) : null;
  };
  const summary = {
    base_train_ratio: ratio('base', ['train_reranker', 'train_embedder']),
    large_train_ratio: ratio('large', ['train_reranker', 'train_embedder']),
    base_inference_ratio: ratio('base', ['score', 'encode']),
    large_inference_ratio: ratio('large', ['score', 'encode']),
    large_rss_ratio: worstRss('large'),
  };
  console.log(
    `\nkotune / PyTorch (geometric means over ${threads.join(' and ')} thread${threads.length > 1 ? 's' : ''}): ` +
      `base training ${fixed(summary.base_train_ratio, 2)}, inference ${fixed(summary.base_inference_ratio, 2)}; ` +
      `large training ${fixed(summary.large_train_ratio, 2)}, inference ${fixed(summary.large_inference_ratio, 2)}; ` +
      `large peak RSS ${fixed(summary.large_rss_ratio, 2)} (targets: ≥ 1.0, ≥ 1.0, RSS ≤ 1.0)`,
  );
  console.log(
    JSON.stringify({
      ...summary,
      backend: first?.ours.description ?? null,
      torch: first?.torch?.torch ?? null,
      threads,
      copy_gb_per_s: bandwidth,
      details,
      ...(Object.keys(failures).length ? { failures } : {}),
    }),
  );
}

if (process.argv[2] === '--prepare') await prepare(process.argv[3]!, process.argv[4]!);
else if (process.argv[2] === '--child') await runOurs(process.argv[3]!, process.argv[4]!);
else await main();
