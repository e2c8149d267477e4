/**
 * Contrastive loss of FlagEmbedding's bi-encoder (bge) fine-tuning
 * (FlagEmbedding/abc/finetune/embedder/AbsModeling.py, `_compute_in_batch_neg_loss` and
 * `_compute_no_in_batch_neg_loss`; BiEncoderOnlyEmbedderModel's `compute_score`), InfoNCE of
 * van den Oord et al. 2018, *Representation Learning with Contrastive Predictive Coding*
 * (https://arxiv.org/abs/1807.03748), as used for BGE in Xiao et al. 2023, *C-Pack*
 * (https://arxiv.org/abs/2309.07597):
 *
 *   q [B, H], p [B·G, H]: L2-normalised embeddings (the model normalises), passages laid out as
 *   B groups of G (each query's positive first, then its G−1 hard negatives)
 *   with in-batch negatives:    scores = q pᵀ / τ  ([B, B·G]);          loss = CE(scores, i·G)
 *   without:                    scores_ij = ⟨q_i, p_{i·G+j}⟩ / τ ([B, G]); loss = CE(scores, 0)
 *
 * τ = 0.02 is FlagEmbedding's default `temperature` for bge.
 */
import { tf, matMul } from '@kotune/engine';
import { crossEntropy, diagonalTargets } from './cross-entropy.ts';

export interface InfoNceOptions {
  /** Divides the dot products; FlagEmbedding's default for bge is 0.02. */
  temperature?: number;
  /** Score each query against every passage of the batch (FlagEmbedding's default) or only its own group. */
  inBatchNegatives?: boolean;
}

export const DEFAULT_INFONCE_TEMPERATURE = 0.02;

function groupSizeOf(queries: tf.Tensor2D, passages: tf.Tensor2D): number {
  const [b, h] = queries.shape;
  if (queries.rank !== 2 || passages.rank !== 2 || passages.shape[1] !== h || b === 0 || passages.shape[0] % b !== 0) {
    throw new Error(`InfoNCE: passages [${passages.shape}] must be B·G rows of the queries' width for queries [${queries.shape}]`);
  }
  return passages.shape[0] / b;
}

/** The `[B, G]` block `scores[i, i·G + j]` of a `[B, B·G]` score matrix (FlagEmbedding's `get_local_score`). */
export function ownGroupScores(scores: tf.Tensor2D, groupSize: number): tf.Tensor2D {
  const [b, columns] = scores.shape;
  if (columns !== b * groupSize) throw new Error(`ownGroupScores: scores [${scores.shape}] are not [B, B·${groupSize}]`);
  // A block-diagonal mask rather than tf.gather: gather's gradient needs UnsortedSegmentSum, which
  // tfjs-backend-wasm does not have.
  return tf.tidy(
    () =>
      scores
        .reshape([b, b, groupSize])
        .mul(tf.eye(b).reshape([b, b, 1]))
        .sum(1) as tf.Tensor2D,
  );
}

/** Scores as above; `groupSize` G = rows(passages) / rows(queries). */
export function infoNceScores(
  queries: tf.Tensor2D,
  passages: tf.Tensor2D,
  options: InfoNceOptions = {},
): { scores: tf.Tensor2D; groupSize: number } {
  const groupSize = groupSizeOf(queries, passages);
  const temperature = options.temperature ?? DEFAULT_INFONCE_TEMPERATURE;
  if (!(temperature > 0)) throw new Error(`InfoNCE: temperature must be > 0 (got ${temperature})`);
  const scores = tf.tidy(() => {
    if (options.inBatchNegatives ?? true) return matMul(queries, passages, false, true).div(temperature) as tf.Tensor2D;
    const [b, h] = queries.shape;
    const own = passages
      .reshape([b, groupSize, h])
      .mul(queries.reshape([b, 1, h]))
      .sum(2);
    return own.div(temperature) as tf.Tensor2D;
  });
  return { scores, groupSize };
}

/** CE of a score matrix from `infoNceScores`: target `i·G` over `[B, B·G]`, or 0 over `[B, G]`. */
export function infoNceLossFromScores(scores: tf.Tensor2D, groupSize: number, inBatchNegatives = true): tf.Scalar {
  const queries = scores.shape[0];
  return crossEntropy(scores, inBatchNegatives ? diagonalTargets(queries, groupSize) : new Array<number>(queries).fill(0));
}

export function infoNceLoss(queries: tf.Tensor2D, passages: tf.Tensor2D, options: InfoNceOptions = {}): tf.Scalar {
  return tf.tidy(() => {
    const { scores, groupSize } = infoNceScores(queries, passages, options);
    return infoNceLossFromScores(scores, groupSize, options.inBatchNegatives ?? true);
  });
}
