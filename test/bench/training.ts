/**
 * The training step `kotune train` runs, set up on a fixed batch for the benches: the model built by the
 * trainer's own `loadTrainModel` (a folder, or a fresh `model_config`), each micro-batch through the trainer's
 * `microBatchGradients` (tokenize, forward with dropout, loss, gradients) and its `Optimization` (accumulate,
 * clip to 1, AdamW). Only the data reading, logging and checkpointing of the loop are left out.
 *
 * Shapes: a reranker trains on `queries` groups of `groupSize` pairs, each pair `seq` tokens long
 * (`query_max_len = seq/4`, `passage_max_len = 3·seq/4`, FlagEmbedding's training cut); an embedder on
 * `queries` (query, positive) pairs with MNRL (scale 20, in-batch negatives, CLS pooling + normalise), both
 * columns `seq` tokens long. The texts are long enough that every row is cut to exactly `seq` tokens: no padding.
 *
 * `microQueries` splits the step the way a user fits a batch into memory, with the same gradients: a reranker's
 * groups into micro-batches of that many queries (gradient accumulation: group CE is a mean over groups), an
 * embedder's columns into GradCache mini-batches of that many texts (`mini_batch_size`: the same MNRL, at the
 * cost of one more forward without gradients).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Rng, rerankerPairs, type TrainBatch } from '@kotune/data';
import type { Encoded } from '@kotune/tokenizer';
import { loadTrainConfig, type TrainConfig, type TrainModel } from '@kotune/trainer';
import { loadTrainModel, microBatchGradients, Optimization } from '@kotune/trainer/step';

export const FIXTURE = fileURLToPath(new URL('../fixtures/xlmr-tiny/', import.meta.url));
/** config.json keys of the e5-small-like model the benches build from a random init (with the fixture's 32k vocabulary). */
export const E5_SMALL_LIKE = {
  hidden_size: 384,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 1536,
  max_position_embeddings: 514,
};
const CORPUS = fileURLToPath(new URL('../../examples/data/chatbot-train.jsonl', import.meta.url));

export type Task = 'reranker' | 'embedder';
/** `textWords`: words a bench text has (default 400: enough for 256 tokens). */
export interface Shape {
  queries: number;
  groupSize: number;
  seq: number;
  microQueries?: number;
  textWords?: number;
}
/** A saved folder (`model_name_or_path`) or a fresh model (`model_config`, the fixture's tokenizer). */
export type ModelSource = { folder: string } | { modelConfig: Record<string, unknown> };

let words: string[] | undefined;
/** `count` Korean texts of `length` words each (400: ≫ 256 tokens), cut from the example chatbot data (deterministic). */
export function benchTexts(count: number, offset = 0, length = 400): string[] {
  words ??= readFileSync(CORPUS, 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      const r = JSON.parse(line) as { pos: string[]; neg: string[] };
      return [...r.pos, ...r.neg];
    })
    .join(' ')
    .split(/\s+/);
  return Array.from({ length: count }, (_, i) => {
    const start = ((offset + i) * 397) % (words!.length - length);
    return words!.slice(start, start + length).join(' ');
  });
}

export interface TrainingSetup {
  config: TrainConfig;
  model: TrainModel;
  batch: TrainBatch;
  /** The batch's token ids and masks, one entry per forward of the step (reranker: the pairs; embedder: queries, positives). */
  forwards: Encoded[];
  /** One optimizer step on the batch; returns its loss. */
  step(): number;
  /** Seconds the last step spent in the optimizer alone (clipping and AdamW). */
  optimizerSeconds: number;
  dispose(): void;
}

/** `settings`: more `kotune train` settings, e.g. `{ gradient_checkpointing: true }`. */
export async function trainingSetup(
  task: Task,
  source: ModelSource,
  shape: Shape,
  settings: Record<string, unknown> = {},
): Promise<TrainingSetup> {
  const { queries, groupSize: G, seq } = shape;
  const micro = shape.microQueries ?? queries;
  const lengths =
    task === 'reranker' ? { query_max_len: seq / 4, passage_max_len: (3 * seq) / 4 } : { query_max_len: seq, passage_max_len: seq };
  const config = loadTrainConfig(null, {
    overrides: {
      task,
      train_data: ['(bench: a fixed batch)'],
      train_group_size: G,
      per_device_train_batch_size: queries,
      ...lengths,
      learning_rate: 1e-5,
      weight_decay: 0.01,
      max_grad_norm: 1,
      lr_scheduler_type: 'constant',
      ...('folder' in source
        ? { model_name_or_path: source.folder }
        : { model_config: source.modelConfig, tokenizer_name_or_path: FIXTURE }),
      ...(task === 'embedder' ? { loss: 'mnrl', sentence_pooling_method: 'cls', normalize_embeddings: true } : {}),
      ...(task === 'embedder' && micro < queries ? { mini_batch_size: micro } : {}),
      ...settings,
    },
  });
  const model = await loadTrainModel(config, null, () => {});
  const texts = benchTexts(queries * (G + 1), 0, shape.textWords);
  const batch: TrainBatch = {
    epoch: 0,
    index: 0,
    groupSize: G,
    queries: texts.slice(0, queries),
    passages: texts.slice(queries),
    sources: [],
  };
  const microBatches: TrainBatch[] =
    task === 'reranker'
      ? Array.from({ length: Math.ceil(queries / micro) }, (_, i) => ({
          ...batch,
          queries: batch.queries.slice(i * micro, (i + 1) * micro),
          passages: batch.passages.slice(i * micro * G, (i + 1) * micro * G),
        }))
      : [batch];
  // The same tokenizer calls microBatchGradients makes, for the other implementation to read.
  const forwards =
    model.kind === 'reranker'
      ? [
          model.tokenizer.encodeRerankerPairs(rerankerPairs(batch), {
            queryMaxLen: config.query_max_len,
            passageMaxLen: config.passage_max_len,
            padding: 'longest',
          }),
        ]
      : [batch.queries, batch.passages].map((column) => model.tokenizer.encodeBatch(column, { maxLength: seq, padding: 'longest' }));
  for (const { inputIds } of forwards) {
    if (inputIds.some((row) => row.length !== seq)) throw new Error(`bench texts must fill ${seq} tokens`);
  }
  const params = model.variables();
  const optimization = new Optimization(config, params, { warmupSteps: 0, totalSteps: Number.MAX_SAFE_INTEGER });
  const rng = new Rng(config.seed);
  const setup: TrainingSetup = {
    config,
    model,
    batch,
    forwards,
    optimizerSeconds: 0,
    step() {
      optimization.begin(microBatches.length);
      let loss = 0;
      for (const part of microBatches) {
        const result = microBatchGradients(config, model, part, rng, params);
        optimization.add(result.grads);
        loss += result.loss / microBatches.length;
      }
      const start = performance.now();
      optimization.step();
      setup.optimizerSeconds = (performance.now() - start) / 1000;
      return loss;
    },
    dispose() {
      optimization.dispose();
      model.dispose();
    },
  };
  return setup;
}
