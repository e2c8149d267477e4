/**
 * Listwise cross-encoder loss of FlagEmbedding's reranker (`AbsRerankerModel.forward`,
 * FlagEmbedding/abc/finetune/reranker/AbsModeling.py), the "localized contrastive estimation" of
 * Gao et al. 2021, *Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline*
 * (https://arxiv.org/abs/2101.08751):
 *
 *   logits [B·G] → grouped [B, G] (each query's G passages, the positive first)
 *   loss = −1/B Σ_i log softmax(grouped_i)_0
 *
 * Adding a constant to a whole group leaves the loss unchanged, so `classifier.out_proj.bias` gets
 * an analytically zero gradient.
 */
import { tf } from '@kotune/engine';
import { crossEntropy } from './cross-entropy.ts';

/** Splits `[B·G]` logits (query-major: q0p0..q0p{G-1}, q1p0, …) into `[B, G]`. */
export function groupLogits(logits: tf.Tensor, groupSize: number): tf.Tensor2D {
  if (!Number.isInteger(groupSize) || groupSize < 1 || logits.size % groupSize !== 0) {
    throw new Error(`group size ${groupSize} does not divide the ${logits.size} logits [${logits.shape}]`);
  }
  return logits.reshape([logits.size / groupSize, groupSize]);
}

/** `CE(logits.view(B, G), target 0)`, mean over the B groups. */
export function groupCrossEntropyLoss(logits: tf.Tensor, groupSize: number): tf.Scalar {
  return tf.tidy(() => {
    const grouped = groupLogits(logits, groupSize);
    return crossEntropy(grouped, new Array<number>(grouped.shape[0]).fill(0));
  });
}
