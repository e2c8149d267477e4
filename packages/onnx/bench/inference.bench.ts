/**
 * `pnpm bench inference`: kotune's `Reranker.score` and `Embedder.encode` next to onnxruntime-node running
 * kotune's own ONNX export of the same weights (`writeOnnx`), in one run on the same machine, same token ids.
 *
 *   configs   e5-small-like (12 layers, hidden 384, 12 heads, FFN 1536, the fixture's 32k vocabulary) and XLM-R base
 *             (12 x 768, 12 heads, FFN 3072, vocabulary 250,002), both freshly initialised (transformers' init)
 *   inputs    16 pairs (score) or 16 texts (encode) cut to exactly `seq` tokens, seq 128 and 512, one batch of 16
 *   threads   1 and 2: kotune's native kernels on OMP_NUM_THREADS, onnxruntime's intraOpNumThreads (inter-op 1)
 *   ort       at its best: each row runs onnxruntime with graphOptimizationLevel 'all' and 'basic' and keeps the
 *             faster (the table says which won)
 *
 * Each side runs each (config, seq, threads) in a process of its own; a side's time per call includes tokenizing
 * (kotune's tokenizer for both) and the pooling or sigmoid after the model. Median of `rounds` timed calls after
 * one untimed call. Both sides' outputs are compared (max|a − b| / max|b|) to show they computed the same thing.
 * Prints a table of tokens/s and ratios kotune / onnxruntime, then, as its last line, one JSON object:
 * `ort_ratio_1t` and `ort_ratio_2t` are the geometric means of the ratios at 1 and 2 threads, `details` every figure
 * (`ortLevels`: onnxruntime's tokens/s at each optimisation level).
 * Target (issue 17, read off here, never asserted): ≥ 1.0 at both.
 *
 *   pnpm bench inference                                   (backend: --backend NAME or KOTUNE_BACKEND, default wasm)
 *   npx tsx packages/onnx/bench/inference.bench.ts --only e5-small --seq 128 --threads 1
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendFromArgv, initBackend } from '@kotune/engine';
import { XLMRTokenizer } from '@kotune/tokenizer';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import { benchTexts, FIXTURE } from '../../../test/bench/training.ts';
import { writeOnnx } from '../src/index.ts';

const SELF = fileURLToPath(import.meta.url);
const BATCH = 16;
const CONFIGS: Record<string, { label: string; model: Record<string, unknown>; rounds: Record<number, number> }> = {
  'e5-small': {
    label: 'e5-small-like (12L/384H/1536/32k)',
    model: { hidden_size: 384, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 1536, max_position_embeddings: 514 },
    rounds: { 128: 7, 512: 5 },
  },
  'xlmr-base': {
    label: 'XLM-R base (12L/768H/3072/250k)',
    model: {
      hidden_size: 768,
      num_hidden_layers: 12,
      num_attention_heads: 12,
      intermediate_size: 3072,
      max_position_embeddings: 514,
      vocab_size: 250002,
    },
    rounds: { 128: 5, 512: 3 },
  },
};
const TASKS = ['score', 'encode'] as const;
type Task = (typeof TASKS)[number];

interface Run {
  seconds: number[];
  tokens: number;
  outputs: number[];
}
interface Measured {
  config: string;
  seq: number;
  threads: number;
  task: Task;
  kotune: Run;
  ort: Run;
  ortLevel: OrtLevel;
  ortLevels: Record<OrtLevel, number>;
}
/** onnxruntime's graph optimisation levels the bench tries; each row keeps the faster. */
const ORT_LEVELS = ['all', 'basic'] as const;
type OrtLevel = (typeof ORT_LEVELS)[number];

function argument(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The bench's inputs: 16 (query, passage) pairs and 16 texts, long enough that every row is cut to `seq` tokens. */
function inputs(): { pairs: [string, string][]; texts: string[] } {
  const texts = benchTexts(2 * BATCH);
  return { pairs: texts.slice(0, BATCH).map((q, i) => [q, texts[BATCH + i]!]), texts: texts.slice(BATCH) };
}

async function timed(rounds: number, call: () => Promise<number[]>): Promise<{ seconds: number[]; outputs: number[] }> {
  const outputs = await call();
  const seconds: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const start = performance.now();
    await call();
    seconds.push((performance.now() - start) / 1000);
  }
  return { seconds, outputs };
}

/** Child process: one side, one model folder, one sequence length; prints its runs as JSON. */
async function child(
  side: 'kotune' | 'ort',
  folder: string,
  task: Task,
  seq: number,
  threads: number,
  rounds: number,
  level: OrtLevel,
): Promise<void> {
  const { pairs, texts } = inputs();
  let call: () => Promise<number[]>;
  if (side === 'kotune') {
    await initBackend({ backend: backendFromArgv() ?? process.env.KOTUNE_BACKEND ?? 'wasm', log: null });
    if (task === 'score') {
      const reranker = await Reranker.load(folder, { log: null });
      call = () => reranker.score(pairs, { maxLength: seq, batchSize: BATCH });
    } else {
      const embedder = await Embedder.load(folder, { log: null, pooling: 'cls', normalize: true });
      call = async () => (await embedder.encode(texts, { maxLength: seq, batchSize: BATCH })).flatMap((e) => [...e]);
    }
  } else {
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(join(folder, 'onnx', 'model.onnx'), {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: level,
    });
    const tokenizer = XLMRTokenizer.fromFolder(folder);
    call = async () => {
      const encoded =
        task === 'score'
          ? tokenizer.encodeRerankerPairs(pairs, { maxLength: seq, padding: 'longest' })
          : tokenizer.encodeBatch(texts, { maxLength: seq, padding: 'longest' });
      const dims = [encoded.inputIds.length, encoded.inputIds[0]!.length];
      const int64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), dims);
      const result = await session.run({ input_ids: int64(encoded.inputIds), attention_mask: int64(encoded.attentionMask) });
      const out = Object.values(result)[0]!.data as Float32Array;
      if (task === 'score') return [...out];
      // CLS pooling and L2 normalisation, as the kotune embedder does (sentence-transformers' Normalize).
      const hidden = out.length / (dims[0]! * dims[1]!);
      return Array.from({ length: dims[0]! }, (_, b) => {
        const cls = out.subarray(b * dims[1]! * hidden, b * dims[1]! * hidden + hidden);
        const norm = Math.max(Math.hypot(...cls), 1e-12);
        return Array.from(cls, (x) => x / norm);
      }).flat();
    };
  }
  const { seconds, outputs } = await timed(rounds, call);
  console.log(JSON.stringify({ seconds, tokens: BATCH * seq, outputs } satisfies Run));
}

function runChild(args: string[], threads: number): Run {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  const r = spawnSync(process.execPath, ['--import', 'tsx', SELF, ...args, ...process.argv.slice(2)], {
    encoding: 'utf8',
    env,
    maxBuffer: 1 << 28,
  });
  if (r.status !== 0)
    throw new Error(
      `bench child ${args.join(' ')} failed:\n${r.stderr
        .split('\n')
        .filter((l) => l.length < 300)
        .join('\n')}`,
    );
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Run;
}

function maxRelativeError(a: number[], b: number[]): number {
  let diff = 0;
  let scale = 0;
  b.forEach((x, i) => {
    diff = Math.max(diff, Math.abs(a[i]! - x));
    scale = Math.max(scale, Math.abs(x));
  });
  return diff / scale;
}

async function main(): Promise<void> {
  const only = argument('only');
  const seqs = argument('seq') ? [Number(argument('seq'))] : [128, 512];
  const threadCounts = argument('threads') ? [Number(argument('threads'))] : [1, 2];
  const info = await initBackend({ backend: backendFromArgv() ?? process.env.KOTUNE_BACKEND ?? 'wasm', log: null });
  console.log(`kotune: ${info.description}; onnxruntime-node 1.30 (CPU); batch ${BATCH}`);
  const work = mkdtempSync(join(tmpdir(), 'kotune-bench-inference-'));
  const measured: Measured[] = [];
  try {
    for (const [name, config] of Object.entries(CONFIGS)) {
      if (only && name !== only) continue;
      process.stderr.write(`  ${name}: initialising and exporting...\n`);
      const folders: Record<Task, string> = { score: join(work, name, 'reranker'), encode: join(work, name, 'embedder') };
      const reranker = Reranker.random(config.model, FIXTURE, 1);
      await reranker.save(folders.score);
      await writeOnnx(reranker, folders.score);
      reranker.dispose();
      const embedder = Embedder.random(config.model, FIXTURE, 2, { pooling: 'cls', normalize: true });
      await embedder.save(folders.encode);
      await writeOnnx(embedder, folders.encode);
      embedder.dispose();
      for (const seq of seqs) {
        for (const threads of threadCounts) {
          for (const task of TASKS) {
            process.stderr.write(`  ${name} seq ${seq}, ${threads} thread(s), ${task}...\n`);
            const args = (side: string, level: OrtLevel = 'all') => [
              '--child',
              side,
              folders[task],
              task,
              String(seq),
              String(threads),
              String(config.rounds[seq] ?? 3),
              level,
            ];
            const kotune = runChild(args('kotune'), threads);
            const ortRuns = ORT_LEVELS.map((level) => ({ level, run: runChild(args('ort', level), threads) }));
            const ort = ortRuns.reduce((best, next) => (median(next.run.seconds) < median(best.run.seconds) ? next : best));
            const ortLevels = Object.fromEntries(ortRuns.map(({ level, run }) => [level, run.tokens / median(run.seconds)])) as Record<
              OrtLevel,
              number
            >;
            measured.push({ config: name, seq, threads, task, kotune, ort: ort.run, ortLevel: ort.level, ortLevels });
          }
        }
      }
      rmSync(join(work, name), { recursive: true, force: true });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }

  const rows = measured.map((m) => {
    const kotune = m.kotune.tokens / median(m.kotune.seconds);
    const ort = m.ort.tokens / median(m.ort.seconds);
    return {
      ...m,
      kotune_tokens_per_s: kotune,
      ort_tokens_per_s: ort,
      ratio: kotune / ort,
      max_rel_diff: maxRelativeError(m.kotune.outputs, m.ort.outputs),
    };
  });
  console.log('\n| model | seq | threads | workload | kotune tok/s | onnxruntime tok/s (level) | kotune / ort | outputs max rel diff |');
  console.log('| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    console.log(
      `| ${CONFIGS[r.config]!.label} | ${r.seq} | ${r.threads} | ${r.task} | ${r.kotune_tokens_per_s.toFixed(0)} | ${r.ort_tokens_per_s.toFixed(0)} (${r.ortLevel}) | ${r.ratio.toFixed(2)} | ${r.max_rel_diff.toExponential(1)} |`,
    );
  }
  const geomean = (threads: number) => {
    const ratios = rows.filter((r) => r.threads === threads).map((r) => r.ratio);
    return ratios.length ? Math.exp(ratios.reduce((s, x) => s + Math.log(x), 0) / ratios.length) : null;
  };
  const details = rows.map(({ kotune, ort, ...r }) => ({ ...r, kotune_seconds: kotune.seconds, ort_seconds: ort.seconds }));
  console.log(JSON.stringify({ ort_ratio_1t: geomean(1), ort_ratio_2t: geomean(2), backend: info.description, details }));
}

const childAt = process.argv.indexOf('--child');
if (childAt >= 0) {
  const [side, folder, task, seq, threads, rounds, level] = process.argv.slice(childAt + 1);
  await child(side as 'kotune' | 'ort', folder!, task as Task, Number(seq), Number(threads), Number(rounds), level as OrtLevel);
} else {
  await main();
}
