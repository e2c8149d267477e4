/**
 * `pnpm bench learning`: does kotune learn what sentence-transformers learns? The same job, from the same
 * initial weights, trained by both and scored by the same judge, side by side:
 *
 *   embedder  a random-init 2-layer XLM-R (hidden 128, the shipped ko-en-32k tokenizer), CLS + normalise,
 *             MNRL scale 20 over the KorSTS (query, positive) pairs of examples/data, batch 32, lr 1e-3,
 *             warmup 0.1, linear decay, 200 steps; kotune's `mnrl` vs sentence-transformers'
 *             MultipleNegativesRankingLoss with its SentenceTransformerTrainer
 *   reranker  the demo's random-init 1-layer reranker (dropout off), KorSTS groups of 1 positive + 3 negatives,
 *             batch 32 groups, lr 2e-3, warmup 0.1, weight decay 0.01, 200 steps; kotune's `bce` vs
 *             sentence-transformers' BinaryCrossEntropyLoss with its CrossEncoderTrainer over the same pairs (the
 *             loss that matches one of kotune's exactly: its listwise losses have no one-hot target). Its trainer
 *             shuffles the rows one by one, so a batch holds a varying share of positives where kotune's holds
 *             exactly 1 in 4: the same loss on average, a noisier curve
 *
 * Both sides run on one thread (the wasm backend with OMP/OPENBLAS_NUM_THREADS=1; torch.set_num_threads(1)).
 * The initial model, sentence-transformers' model and kotune's export are all scored by sentence-transformers'
 * evaluators on the 200 held-out queries (InformationRetrievalEvaluator over every passage of the eval file;
 * CrossEncoderRerankingEvaluator over each query's 10 candidates). Wall time: kotune's `train()` (plan, load,
 * steps, final export), sentence-transformers' `trainer.train()`. Prints a table per job, writes the per-step
 * loss curves of both into one PNG per job (checkpoints/bench-learning/), and ends with one JSON line.
 * sentence-transformers runs in the referee Python of test/referee/python.ts (plus `datasets` and
 * `accelerate`, which its trainers need); without one the bench says why and stops.
 *
 *   pnpm bench learning                       200 steps, seed 42
 *   pnpm bench learning --seeds 3 --steps 50  seeds 42, 43, 44 on both sides; a shorter run
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { initBackend, type BackendInfo } from '@kotune/engine';
import { lineChartPng, loadTrainConfig, train } from '@kotune/trainer';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import { findReferee } from '../referee/python.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TRAIN = join(ROOT, 'examples/data/korsts-train.jsonl');
const EVAL = join(ROOT, 'examples/data/korsts-eval.jsonl');
const TOKENIZER = join(ROOT, 'packages/tokenizer/assets/ko-en-32k');
const OUT = join(ROOT, 'checkpoints/bench-learning');
const ST_SCRIPT = fileURLToPath(new URL('st_learning.py', import.meta.url));

type JobName = 'embedder' | 'reranker';
interface Job {
  title: string;
  /** config.json of the random init both sides start from. */
  model: Record<string, unknown>;
  /** kotune train settings; the same numbers go to sentence-transformers (see `stJob`). */
  settings: Record<string, unknown>;
}
const SMALL = { hidden_size: 128, num_attention_heads: 4, intermediate_size: 512, initializer_range: 0.05, max_position_embeddings: 514 };
const JOBS: Record<JobName, Job> = {
  embedder: {
    title: 'embedder: random-init 2-layer XLM-R (hidden 128), CLS + normalise, MNRL scale 20, batch 32, lr 1e-3',
    model: { ...SMALL, num_hidden_layers: 2 },
    settings: {
      task: 'embedder',
      loss: 'mnrl',
      scale: 20,
      train_group_size: 1,
      per_device_train_batch_size: 32,
      learning_rate: 1e-3,
      warmup_ratio: 0.1,
      weight_decay: 0,
      query_max_len: 64,
      passage_max_len: 64,
      sentence_pooling_method: 'cls',
      normalize_embeddings: true,
    },
  },
  reranker: {
    title: 'reranker: random-init 1-layer XLM-R (hidden 128, dropout 0), BCE over groups of 1 + 3, batch 32 groups, lr 2e-3',
    model: { ...SMALL, num_hidden_layers: 1, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 },
    settings: {
      task: 'reranker',
      loss: 'bce',
      train_group_size: 4,
      per_device_train_batch_size: 32,
      learning_rate: 2e-3,
      warmup_ratio: 0.1,
      weight_decay: 0.01,
      query_max_len: 32,
      passage_max_len: 64,
    },
  },
};
const INIT_SEED = 42;

interface Options {
  steps: number;
  seeds: number[];
}
interface KotuneRun {
  seconds: number;
  losses: [number, number][];
  folder: string;
}
interface KotuneSide {
  backend: string;
  init: Record<JobName, string>;
  runs: Record<JobName, Record<string, KotuneRun>>;
}
type Metrics = Record<string, number>;
interface StSide {
  versions: Record<string, string>;
  jobs: Record<
    JobName,
    {
      init: Metrics;
      sentence_transformers: Record<string, { seconds: number; losses: [number, number][]; metrics: Metrics }>;
      kotune: Record<string, Metrics>;
    }
  >;
}

function options(): Options {
  const value = (flag: string, fallback: number) => {
    const i = process.argv.indexOf(flag);
    const n = i >= 0 ? Number(process.argv[i + 1]) : fallback;
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} takes a whole number >= 1, got ${process.argv[i + 1]}`);
    return n;
  };
  return { steps: value('--steps', 200), seeds: Array.from({ length: value('--seeds', 1) }, (_, i) => 42 + i) };
}

/** Child process (one thread): the initial folders, then kotune's trainings. */
async function kotuneSide(work: string, { steps, seeds }: Options): Promise<void> {
  const info: BackendInfo = await initBackend({ backend: 'wasm', log: null });
  const side: KotuneSide = { backend: info.description, init: {} as Record<JobName, string>, runs: {} as KotuneSide['runs'] };
  for (const [name, job] of Object.entries(JOBS) as [JobName, Job][]) {
    const init = join(work, `init-${name}`);
    const model =
      name === 'embedder'
        ? Embedder.random(job.model, TOKENIZER, INIT_SEED, { maxSeqLength: 64 })
        : Reranker.random(job.model, TOKENIZER, INIT_SEED);
    await model.save(init);
    model.dispose();
    side.init[name] = init;
    side.runs[name] = {};
    for (const seed of seeds) {
      const losses: [number, number][] = [];
      const config = loadTrainConfig(null, {
        overrides: {
          ...job.settings,
          model_name_or_path: init,
          train_data: [TRAIN],
          output_dir: join(work, `kotune-${name}-${seed}`),
          seed,
          max_steps: steps,
          lr_scheduler_type: 'linear',
          max_grad_norm: 1,
          logging_steps: steps,
          save_steps: 1_000_000,
          backend: 'wasm',
        },
      });
      const started = performance.now();
      const result = await train(config, {
        print: () => {},
        progressStream: new Writable({ write: (_chunk, _encoding, done) => done() }),
        onStep: (step, loss) => losses.push([step, loss]),
      });
      const seconds = (performance.now() - started) / 1000;
      process.stderr.write(`${name}: kotune (seed ${seed}) trained in ${seconds.toFixed(1)} s\n`);
      side.runs[name][String(seed)] = { seconds, losses, folder: result.outputDir };
    }
  }
  writeFileSync(join(work, 'kotune.json'), JSON.stringify(side));
}

/** Runs one side; of its output only the timing lines and errors are shown (the trainers log every step). */
function runChild(command: string, args: string[], env: NodeJS.ProcessEnv): void {
  const r = spawnSync(command, args, { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
  const lines = r.stderr.split('\n').filter((line) => /trained in|Error|error/.test(line) && line.length < 400);
  if (lines.length > 0) console.log(lines.join('\n'));
  if (r.status !== 0)
    throw new Error(`${command} ${args[0]} failed (status ${r.status}): ${r.stderr.trim().split('\n').slice(-5).join('\n')}`);
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const fixed = (x: number | undefined, digits = 4) => (x === undefined ? 'n/a' : x.toFixed(digits));
/** Mean loss over the last `n` steps. */
const tail = (losses: [number, number][], n = 20) => mean(losses.slice(-n).map(([, loss]) => loss));

async function main(): Promise<void> {
  const opts = options();
  const referee = await findReferee({ datasets: 'datasets', accelerate: 'accelerate' }, (line) => console.log(line));
  if ('reason' in referee) {
    console.log(`learning bench skipped: ${referee.reason}`);
    console.log(JSON.stringify({ skipped: referee.reason }));
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'kotune-learning-'));
  const threadEnv = { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };
  try {
    console.log(`kotune: ${opts.seeds.length} seed(s) x 2 jobs of ${opts.steps} steps...`);
    runChild(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', work, ...process.argv.slice(2)], threadEnv);
    const ours = JSON.parse(readFileSync(join(work, 'kotune.json'), 'utf8')) as KotuneSide;

    console.log(
      `sentence-transformers (${referee.versions['sentence-transformers']}): the same jobs, then every model scored by its evaluators...`,
    );
    const spec = {
      threads: 1,
      jobs: (Object.entries(JOBS) as [JobName, Job][]).map(([name, job]) => {
        const s = job.settings as Record<string, number>;
        return {
          name,
          kind: name,
          init: ours.init[name],
          train: TRAIN,
          eval: EVAL,
          output: join(work, `st-${name}`),
          seeds: opts.seeds,
          steps: opts.steps,
          batch_size: s.per_device_train_batch_size,
          learning_rate: s.learning_rate,
          warmup_ratio: s.warmup_ratio,
          weight_decay: s.weight_decay,
          scale: s.scale ?? null,
          max_seq_length: s.query_max_len,
          group_size: s.train_group_size,
          max_length: s.query_max_len + s.passage_max_len,
          kotune: Object.fromEntries(Object.entries(ours.runs[name]).map(([seed, run]) => [seed, run.folder])),
        };
      }),
    };
    writeFileSync(join(work, 'st-spec.json'), JSON.stringify(spec));
    runChild(referee.python, [ST_SCRIPT, join(work, 'st-spec.json'), join(work, 'st.json')], threadEnv);
    const theirs = JSON.parse(readFileSync(join(work, 'st.json'), 'utf8')) as StSide;
    report(opts, ours, theirs);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function report(opts: Options, ours: KotuneSide, theirs: StSide): void {
  mkdirSync(OUT, { recursive: true });
  const stName = `sentence-transformers ${theirs.versions['sentence-transformers']}`;
  const columns: Record<JobName, [string, string][]> = {
    embedder: [
      ['MRR@10', 'cosine_mrr@10'],
      ['NDCG@10', 'cosine_ndcg@10'],
      ['Accuracy@1', 'cosine_accuracy@1'],
      ['Recall@10', 'cosine_recall@10'],
    ],
    reranker: [
      ['MRR@10', 'mrr@10'],
      ['NDCG@10', 'ndcg@10'],
      ['MAP', 'map'],
    ],
  };
  const summary: Record<string, unknown> = {};
  console.log(
    `\nkotune: ${ours.backend}; ${stName}, transformers ${theirs.versions.transformers}, torch ${theirs.versions.torch}; one thread each, ${opts.steps} steps`,
  );
  for (const name of Object.keys(JOBS) as JobName[]) {
    const job = theirs.jobs[name];
    const cols = columns[name];
    console.log(
      `\n${JOBS[name].title}, ${opts.steps} steps; scored by sentence-transformers' ${name === 'embedder' ? 'InformationRetrievalEvaluator' : 'CrossEncoderRerankingEvaluator'} on 200 held-out queries\n`,
    );
    console.log(
      `| model | ${cols.map(([title]) => title).join(' | ')} | train wall time (s) | loss, first 20 steps | loss, last 20 steps |`,
    );
    console.log(`| --- | ${cols.map(() => '---:').join(' | ')} | ---: | ---: | ---: |`);
    const row = (label: string, metrics: Metrics, seconds?: number, losses?: [number, number][]) =>
      console.log(
        `| ${label} | ${cols.map(([, key]) => fixed(metrics[key])).join(' | ')} | ${seconds === undefined ? '' : seconds.toFixed(1)} | ` +
          `${losses ? fixed(mean(losses.slice(0, 20).map(([, l]) => l))) : ''} | ${losses ? fixed(tail(losses)) : ''} |`,
      );
    row('initial weights', job.init);
    for (const seed of opts.seeds.map(String))
      row(
        `${stName} (seed ${seed})`,
        job.sentence_transformers[seed]!.metrics,
        job.sentence_transformers[seed]!.seconds,
        job.sentence_transformers[seed]!.losses,
      );
    for (const seed of opts.seeds.map(String))
      row(`kotune (seed ${seed})`, job.kotune[seed]!, ours.runs[name][seed]!.seconds, ours.runs[name][seed]!.losses);

    const seed = String(opts.seeds[0]);
    const png = join(OUT, `learning-${name}-loss.png`);
    writeFileSync(
      png,
      lineChartPng(`${name}: training loss per step (seed ${seed}), same initial weights and data`, 'loss', [
        { label: stName, points: job.sentence_transformers[seed]!.losses.map(([x, y]) => ({ x, y })) },
        { label: 'kotune', points: ours.runs[name][seed]!.losses.map(([x, y]) => ({ x, y })) },
      ]),
    );
    console.log(`\nloss curves: ${png}`);
    const key = cols[0]![1];
    const stSeconds = mean(Object.values(job.sentence_transformers).map((r) => r.seconds));
    const kotuneSeconds = mean(Object.values(ours.runs[name]).map((r) => r.seconds));
    summary[name] = {
      metric: key,
      init: job.init[key],
      sentence_transformers: Object.values(job.sentence_transformers).map((r) => r.metrics[key]),
      kotune: Object.values(job.kotune).map((m) => m[key]),
      sentence_transformers_seconds: stSeconds,
      kotune_seconds: kotuneSeconds,
      time_ratio: kotuneSeconds / stSeconds,
      last20_loss: {
        sentence_transformers: mean(Object.values(job.sentence_transformers).map((r) => tail(r.losses))),
        kotune: mean(Object.values(ours.runs[name]).map((r) => tail(r.losses))),
      },
    };
  }
  const result = { steps: opts.steps, seeds: opts.seeds, backend: ours.backend, versions: theirs.versions, ...summary };
  writeFileSync(join(OUT, 'learning.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
}

if (process.argv[2] === '--child') await kotuneSide(process.argv[3]!, options());
else await main();
