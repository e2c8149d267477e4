/**
 * sentence-transformers' `MultipleNegativesRankingLoss` (sentence_transformers/losses/
 * MultipleNegativesRankingLoss.py) and `MultipleNegativesSymmetricRankingLoss`
 * (MultipleNegativesSymmetricRankingLoss.py; = MNRL with `directions=("query_to_doc","doc_to_query")`,
 * `partition_mode="per_direction"`). Henderson et al. 2017, *Efficient Natural Language Response
 * Suggestion for Smart Reply* (https://arxiv.org/abs/1705.00652); the symmetric form as in Günther
 * et al. 2024 (https://arxiv.org/abs/2310.19923).
 *
 *   anchors a [B, H]; candidate columns c¹ = positives, c², … = hard negatives, each [B, H]
 *   scores = sim(a, cat(c¹, c², …)) · scale      [B, B·(columns)]   (sim = cosine by default, scale 20)
 *   MNRL           = CE(scores, arange(B))        (every other anchor's positive and every negative is a negative)
 *   symmetric MNRL = (CE(scores, arange(B)) + CE(scores[:, :B]ᵀ, arange(B))) / 2
 *                    (the second term asks each positive to pick its anchor among all anchors; the
 *                    hard negatives only enter the first term)
 */
import { l2Normalize, matMul, tf } from '@kotune/engine';
import { crossEntropy, diagonalTargets } from './cross-entropy.ts';

export type Similarity = 'cosine' | 'dot';

export interface MultipleNegativesRankingOptions {
  /** Multiplies the similarities (= 1 / temperature); sentence-transformers' default is 20. */
  scale?: number;
  /** `cosine` = sentence-transformers `util.cos_sim` (the default), `dot` = `util.dot_score`. */
  similarity?: Similarity;
}

export const DEFAULT_MNRL_SCALE = 20;

/** `[B, B·columns]` scaled similarities of each anchor to every candidate (positives first). */
export function multipleNegativesScores(
  anchors: tf.Tensor2D,
  candidates: readonly tf.Tensor2D[],
  options: MultipleNegativesRankingOptions = {},
): tf.Tensor2D {
  const scale = options.scale ?? DEFAULT_MNRL_SCALE;
  if (!(scale > 0)) throw new Error(`MultipleNegativesRankingLoss: scale must be > 0 (got ${scale})`);
  if (candidates.length === 0) throw new Error('MultipleNegativesRankingLoss: needs at least the positives column');
  for (const [i, c] of candidates.entries()) {
    if (c.rank !== 2 || c.shape[0] !== anchors.shape[0] || c.shape[1] !== anchors.shape[1]) {
      throw new Error(`MultipleNegativesRankingLoss: candidate column ${i} [${c.shape}] does not match anchors [${anchors.shape}]`);
    }
  }
  return tf.tidy(() => {
    const docs = candidates.length === 1 ? candidates[0]! : tf.concat(candidates as tf.Tensor2D[], 0);
    const cosine = (options.similarity ?? 'cosine') === 'cosine';
    const a = cosine ? l2Normalize(anchors) : anchors;
    const d = cosine ? l2Normalize(docs) : docs;
    return matMul(a, d, false, true).mul(scale) as tf.Tensor2D;
  });
}

/** MNRL of a score matrix from `multipleNegativesScores`: `CE(scores, arange(B))`. */
export function multipleNegativesRankingLossFromScores(scores: tf.Tensor2D): tf.Scalar {
  return crossEntropy(scores, diagonalTargets(scores.shape[0]));
}

/** Symmetric MNRL of a score matrix: `(CE(scores, arange) + CE(scores[:, :B]ᵀ, arange)) / 2`. */
export function multipleNegativesSymmetricRankingLossFromScores(scores: tf.Tensor2D): tf.Scalar {
  const b = scores.shape[0];
  return tf.tidy(() => {
    const forward = crossEntropy(scores, diagonalTargets(b));
    const backward = crossEntropy(scores.slice([0, 0], [b, b]).transpose() as tf.Tensor2D, diagonalTargets(b));
    return forward.add(backward).div(2) as tf.Scalar;
  });
}

export function multipleNegativesRankingLoss(
  anchors: tf.Tensor2D,
  candidates: readonly tf.Tensor2D[],
  options: MultipleNegativesRankingOptions = {},
): tf.Scalar {
  return tf.tidy(() => multipleNegativesRankingLossFromScores(multipleNegativesScores(anchors, candidates, options)));
}

export function multipleNegativesSymmetricRankingLoss(
  anchors: tf.Tensor2D,
  candidates: readonly tf.Tensor2D[],
  options: MultipleNegativesRankingOptions = {},
): tf.Scalar {
  return tf.tidy(() => multipleNegativesSymmetricRankingLossFromScores(multipleNegativesScores(anchors, candidates, options)));
}
