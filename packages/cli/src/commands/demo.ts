/**
 * `kotune demo` (`pnpm demo`, the README's first command): trains a tiny Korean cross-encoder reranker from a
 * random init, with the shipped tokenizer, to rank a sentence's paraphrase above unrelated sentences, on the
 * shipped KorSTS pairs (`examples/demo.json`, `examples/data/README.md`), on whatever backend loads first (wasm
 * on a fresh machine), in a few minutes.
 *
 * It scores the held-out split (`eval_data`) with the random-init model before training, with the code
 * `kotune eval` runs (@kotune/eval); the trainer evaluates the final model on the same split with the same code
 * at its last step, and the demo prints the two as one before/after table. The run
 * folder (default `checkpoints/demo`) ends up holding the exported model, `metrics.jsonl`, the training plots
 * and the table (`eval.md`, `eval.json`, `eval.png`).
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@kotune/engine';
import {
  evalCutoffs,
  readRerankQueries,
  rerankedMetrics,
  scoreCandidates,
  writeBarChart,
  type RerankQuery,
  type ScorePairs,
  type SystemResult,
} from '@kotune/eval';
import { writeFileAtomic, type IrMetrics } from '@kotune/metrics';
import { ConfigError, formatDuration, loadTrainConfig, PLOT_FILES, train, type TrainConfig } from '@kotune/trainer';
import { Reranker } from '@kotune/xlm-roberta';
import { commandUsage, intFlag, parseCommandArgs, type Flags } from '../args.ts';
import { CliError } from '../errors.ts';

/** The demo's training config; its `output_dir` is the demo's own folder, `checkpoints/demo`. */
export const DEMO_CONFIG = fileURLToPath(new URL('../../../../examples/demo.json', import.meta.url));

const SYNOPSIS = '[--output-dir DIR] [--max-steps N]';
const FLAGS: Flags = {
  'output-dir': {
    type: 'string',
    help: 'run folder (default checkpoints/demo, whose previous contents are deleted; another folder must be empty)',
  },
  'max-steps': { type: 'string', help: `optimizer steps (default the config's, ${relative(process.cwd(), DEMO_CONFIG)})` },
};

/** The table's columns: with one positive per query, Recall@k is also accuracy@k (the positive is in the top k). */
const TABLE_METRICS = [
  ['MRR', 'mrr'],
  ['NDCG', 'ndcg'],
  ['Recall', 'recall'],
] as const;
const TABLE_KS = [1, 3, 5, 10] as const;

/** One markdown table, a row per system, columns MRR@k, NDCG@k, Recall@k for k = 1, 3, 5, 10. */
export function beforeAfterTable(systems: readonly SystemResult[]): string {
  const columns = TABLE_METRICS.flatMap(([title, key]) => TABLE_KS.map((k) => ({ title: `${title}@${k}`, key: `${key}@${k}` })));
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return (
    [
      row(['model', ...columns.map((c) => c.title)]),
      row(['---', ...columns.map(() => '---:')]),
      ...systems.map((s) => row([s.name, ...columns.map((c) => s.metrics[c.key]?.toFixed(4) ?? '–')])),
    ].join('\n') + '\n'
  );
}

/**
 * The demo's folder is emptied so that each run starts afresh (the trainer would otherwise keep the old
 * checkpoints beside the new ones); a folder the user named is never deleted from, only refused when not empty.
 */
function freshRunFolder(dir: string, isDemoFolder: boolean): void {
  if (!existsSync(dir)) return;
  const entries = readdirSync(dir);
  if (entries.length === 0) return;
  if (!isDemoFolder) throw new CliError(`demo: ${dir} is not empty; give an empty or new --output-dir`);
  console.error(`demo: deleting the previous demo run in ${dir} (${entries.length} entries)`);
  for (const entry of entries) rmSync(join(dir, entry), { recursive: true, force: true });
}

async function scoreEvalSet(queries: readonly RerankQuery[], score: ScorePairs, label: string, batchSize: number): Promise<IrMetrics> {
  const scores = await scoreCandidates(queries, score, { label, chunkPairs: Math.max(batchSize, 256) });
  return rerankedMetrics(queries, scores, evalCutoffs()).means;
}

function describeModel(reranker: Reranker, config: TrainConfig): string {
  const sizes = [...reranker.variables()].map(([name, v]) => ({ name, size: v.size }));
  const total = sizes.reduce((n, s) => n + s.size, 0);
  const embedding = sizes.find((s) => s.name.endsWith('embeddings.word_embeddings.weight'))?.size ?? 0;
  const c = reranker.config;
  return (
    `model: XLM-RoBERTa reranker from a random init (seed ${config.seed}): ${c.numHiddenLayers} layer${c.numHiddenLayers === 1 ? '' : 's'}, hidden ${c.hiddenSize}, ` +
    `${c.numAttentionHeads} heads, FFN ${c.intermediateSize}, ${(total / 1e6).toFixed(2)}M parameters ` +
    `(${(embedding / 1e6).toFixed(2)}M in the ${c.vocabSize}-token embedding)`
  );
}

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommandArgs('demo', SYNOPSIS, FLAGS, argv);
  if (!parsed) return;
  const v = parsed.values;
  const overrides: Record<string, unknown> = {};
  if (v['output-dir'] !== undefined) overrides.output_dir = v['output-dir'];
  if (v['max-steps'] !== undefined) overrides.max_steps = intFlag('demo', 'max-steps', v['max-steps'], 0);
  if (v.backend !== undefined) overrides.backend = v.backend;
  if (!existsSync(DEMO_CONFIG)) {
    // The npm package ships the commands, not examples/ and the tokenizer's assets the demo trains on.
    throw new CliError(
      'demo: runs in a clone of the kotune repository (its examples/ and tokenizer assets are not in the npm package): npx -y pnpm@12 install && npx -y pnpm@12 demo',
    );
  }
  let config: TrainConfig;
  try {
    config = loadTrainConfig(DEMO_CONFIG, { overrides });
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(`demo: ${error.message}\n\n${commandUsage('demo', SYNOPSIS, FLAGS)}`);
    throw error;
  }
  const started = performance.now();
  freshRunFolder(config.output_dir, v['output-dir'] === undefined);

  await initBackend({ backend: config.backend ?? undefined }); // prints the "backend: ..." line
  const queries = (await Promise.all(config.eval_data.map((path) => readRerankQueries(path)))).flat();
  const batchSize = config.per_device_eval_batch_size;

  // The trainer starts from this very model: the same config, tokenizer and seed give the same weights.
  const initial = Reranker.random(config.model_config!, config.tokenizer_name_or_path!, config.seed);
  const maxLength = Math.min(config.max_len, initial.model.roberta.maxSequenceLength);
  console.error(describeModel(initial, config));
  let before: IrMetrics;
  try {
    const score: ScorePairs = (pairs) => initial.score(pairs, { batchSize, maxLength });
    before = await scoreEvalSet(queries, score, 'before training: scoring the eval split', batchSize);
  } finally {
    initial.dispose();
  }

  const result = await train(config);
  // The trainer's evaluation at its last step: the exported model on eval_data, scored as above.
  const after: IrMetrics = result.lastEval!;

  const systems: SystemResult[] = [
    { name: 'before (random init)', metrics: before },
    { name: `after (${result.globalStep} steps)`, metrics: after },
  ];
  const table = beforeAfterTable(systems);
  const dir = config.output_dir;
  const summary = {
    task: 'reranker',
    data: config.eval_data,
    queries: queries.length,
    steps: result.globalStep,
    systems: Object.fromEntries(systems.map((s) => [s.name, s.metrics])),
  };
  writeFileAtomic(join(dir, 'eval.json'), `${JSON.stringify(summary, null, 2)}\n`);
  writeFileAtomic(join(dir, 'eval.md'), table);
  writeBarChart(join(dir, 'eval.png'), systems, { title: `demo reranker before and after training (${queries.length} held-out queries)` });

  const shown = (path: string) => relative(process.cwd(), path) || '.';
  const files: [string, string][] = [
    ['config.json, model.safetensors, tokenizer files', 'the trained reranker (a Hugging Face folder)'],
    ...(result.bestCheckpoint
      ? [[`${relative(dir, result.bestCheckpoint)}/`, `the best ${config.metric_for_best_model} checkpoint`] as [string, string]]
      : []),
    ['metrics.jsonl', 'the training and eval log'],
    [Object.values(PLOT_FILES).join(', '), 'its plots'],
    ['eval.md, eval.json, eval.png', 'the before/after table'],
  ];
  const width = Math.max(...files.map(([name]) => name.length));
  console.log(
    `\nheld-out split: ${queries.length} queries of ${config.eval_data.map(shown).join(', ')}, ` +
      `each ranking ${queries[0]?.candidates.length ?? 0} candidates\n`,
  );
  console.log(table);
  console.log(
    `MRR@10 ${before['mrr@10']!.toFixed(4)} -> ${after['mrr@10']!.toFixed(4)}; ` +
      `the demo took ${formatDuration((performance.now() - started) / 1000)}\n`,
  );
  console.log(`in ${shown(dir)}/:\n${files.map(([name, what]) => `  ${name.padEnd(width)}  ${what}`).join('\n')}\n`);
  console.log(`score your own pairs: pnpm kotune score --model ${shown(dir)} --input pairs.jsonl   ({"query", "passage"} lines)`);
}
