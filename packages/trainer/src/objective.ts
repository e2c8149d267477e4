/**
 * Loss and parameter gradients of one micro-batch: tokenize, forward in training mode (every forward's
 * dropout seed drawn from the trainer's generator, so a resumed run draws the same), then the configured loss.
 *
 *   reranker  pairs (query, passage) grouped by query, positive first -> logits [B*G]
 *             group_ce: FlagEmbedding's cross-entropy over each group; bce: positive 1, negatives 0;
 *             knowledge_distillation: CE + soft CE against the lines' teacher scores
 *   embedder  columns of texts embedded separately: queries, then
 *               mnrl / mnrl_symmetric: the positives, then one column per negative slot (sentence-transformers'
 *                                      (anchor, positive, negative_1, ...) columns; scale)
 *               infonce: all B*G passages in group order (FlagEmbedding; temperature, use_inbatch_neg,
 *                        knowledge_distillation)
 *             mini_batch_size > 0: the same loss through GradCache (each column in mini-batches of that size)
 * gradient_checkpointing recomputes each encoder layer in the backward (same dropout masks, same gradients).
 */
import { rerankerPairs, type Rng, type TrainBatch } from '@kotune/data';
import { tf } from '@kotune/engine';
import {
  binaryCrossEntropyLoss,
  embedderDistillationLoss,
  gradCache,
  groupCrossEntropyLoss,
  infoNceLoss,
  miniBatches,
  multipleNegativesRankingLoss,
  multipleNegativesSymmetricRankingLoss,
  rerankerDistillationLoss,
} from '@kotune/losses';
import type { Embedder, Reranker } from '@kotune/xlm-roberta';
import { lossKnobs, type EmbedderLoss, type RerankerLoss, type TrainConfig } from './config.ts';
import type { TrainModel } from './model.ts';

export interface MicroBatchResult {
  loss: number;
  /** Keyed by checkpoint name; the caller disposes them. */
  grads: Map<string, tf.Tensor>;
}

/** Token ids of some texts and the dropout seed of their forward. */
interface Chunk {
  inputIds: number[][];
  attentionMask: number[][];
  seed: number;
}

/** `tf.variableGrads` of `loss` (intermediates released), gradients renamed to checkpoint names. */
function lossAndGrads(params: Map<string, tf.Variable>, loss: () => tf.Scalar): MicroBatchResult {
  const names = new Map([...params].map(([name, variable]) => [variable.name, name]));
  const { value, grads } = tf.variableGrads(loss, [...params.values()]);
  const lossValue = value.dataSync()[0]!;
  value.dispose();
  return { loss: lossValue, grads: new Map(Object.entries(grads).map(([tfName, grad]) => [names.get(tfName)!, grad])) };
}

function int2d(rows: number[][]): tf.Tensor2D {
  return tf.tensor2d(rows, [rows.length, rows[0]!.length], 'int32');
}

/** The end of an exhaustive switch: a loss added to the config but not here fails to compile. */
function unknownLoss(loss: never): never {
  throw new Error(`unknown loss ${String(loss)}`);
}

export function microBatchGradients(
  config: TrainConfig,
  model: TrainModel,
  batch: TrainBatch,
  rng: Rng,
  params: Map<string, tf.Variable>,
): MicroBatchResult {
  switch (config.loss) {
    case 'group_ce':
    case 'bce':
      return rerankerGradients(config, config.loss, modelOfKind(model, 'reranker'), batch, rng, params);
    case 'mnrl':
    case 'mnrl_symmetric':
    case 'infonce':
      return embedderGradients(config, config.loss, modelOfKind(model, 'embedder'), batch, rng, params);
    default:
      return unknownLoss(config.loss);
  }
}

function modelOfKind<K extends TrainModel['kind']>(model: TrainModel, kind: K): Extract<TrainModel, { kind: K }> {
  if (model.kind !== kind) throw new Error(`the loss is for a ${kind}, the model is a ${model.kind}`);
  return model as Extract<TrainModel, { kind: K }>;
}

function rerankerGradients(
  config: TrainConfig,
  loss: RerankerLoss,
  model: Reranker,
  batch: TrainBatch,
  rng: Rng,
  params: Map<string, tf.Variable>,
): MicroBatchResult {
  const G = batch.groupSize;
  const { inputIds, attentionMask } = model.tokenizer.encodeRerankerPairs(rerankerPairs(batch), {
    queryMaxLen: config.query_max_len,
    passageMaxLen: config.passage_max_len,
    padding: 'longest',
  });
  const seed = rng.nextUint32();
  return lossAndGrads(params, () => {
    const logits = model.forward(int2d(inputIds), int2d(attentionMask), {
      training: true,
      seed,
      gradientCheckpointing: config.gradient_checkpointing,
    });
    if (config.knowledge_distillation) return rerankerDistillationLoss(logits, batch.teacherScores!, G);
    switch (loss) {
      case 'group_ce':
        return groupCrossEntropyLoss(logits, G);
      case 'bce':
        return binaryCrossEntropyLoss(
          logits,
          batch.passages.map((_, i) => (i % G === 0 ? 1 : 0)),
        );
      default:
        return unknownLoss(loss);
    }
  });
}

function embedderGradients(
  config: TrainConfig,
  loss: EmbedderLoss,
  model: Embedder,
  batch: TrainBatch,
  rng: Rng,
  params: Map<string, tf.Variable>,
): MicroBatchResult {
  const G = batch.groupSize;
  const B = batch.queries.length;
  const passageColumns =
    loss === 'infonce'
      ? [batch.passages]
      : Array.from({ length: G }, (_, j) => Array.from({ length: B }, (_, i) => batch.passages[i * G + j]!));
  const columns = [
    { texts: batch.queries, maxLength: config.query_max_len },
    ...passageColumns.map((texts) => ({ texts, maxLength: config.passage_max_len })),
  ];
  const chunk = (texts: string[], maxLength: number): Chunk => ({
    ...model.tokenizer.encodeBatch(texts, { maxLength, padding: 'longest' }),
    seed: rng.nextUint32(),
  });
  const embed = (c: Chunk): tf.Tensor2D =>
    model.forward(int2d(c.inputIds), int2d(c.attentionMask), {
      training: true,
      seed: c.seed,
      gradientCheckpointing: config.gradient_checkpointing,
    });

  const { scale, temperature } = lossKnobs(config);
  const infoNce = { temperature, inBatchNegatives: config.use_inbatch_neg };
  const lossOf = ([queries, ...passages]: tf.Tensor2D[]): tf.Scalar => {
    switch (loss) {
      case 'mnrl':
        return multipleNegativesRankingLoss(queries!, passages, { scale });
      case 'mnrl_symmetric':
        return multipleNegativesSymmetricRankingLoss(queries!, passages, { scale });
      case 'infonce':
        return config.knowledge_distillation
          ? embedderDistillationLoss(queries!, passages[0]!, batch.teacherScores!, infoNce)
          : infoNceLoss(queries!, passages[0]!, infoNce);
      default:
        return unknownLoss(loss);
    }
  };
  if (config.mini_batch_size > 0) {
    const chunked = columns.map(({ texts, maxLength }) => miniBatches(texts, config.mini_batch_size).map((part) => chunk(part, maxLength)));
    return gradCache(chunked, embed, lossOf, params);
  }
  const chunks = columns.map(({ texts, maxLength }) => chunk(texts, maxLength));
  return lossAndGrads(params, () => lossOf(chunks.map(embed)));
}
