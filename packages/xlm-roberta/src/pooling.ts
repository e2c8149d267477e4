/**
 * Sentence embeddings from token states, as sentence-transformers' `Pooling` and `Normalize` modules compute
 * them, and the cosine similarity of its `util.cos_sim`.
 */
import { tf } from '@kotune/engine';
import { firstToken } from './modeling-xlm-roberta.ts';

export type PoolingMode = 'cls' | 'mean';

export const POOLING_MODES: readonly PoolingMode[] = ['cls', 'mean'];

/** CLS: `h[:, 0]`; mean: `Σ h·mask / max(Σ mask, 1e-9)` over the real tokens. `[B, S, H]` → `[B, H]`. */
export function pool(hidden: tf.Tensor3D, attentionMask: tf.Tensor2D, mode: PoolingMode): tf.Tensor2D {
  return tf.tidy(() => {
    if (mode === 'cls') return firstToken(hidden);
    const mask = tf.expandDims(tf.cast(attentionMask, 'float32'), 2);
    const summed = tf.sum(tf.mul(hidden, mask), 1);
    return tf.div(summed, tf.maximum(tf.sum(mask, 1), 1e-9)) as tf.Tensor2D;
  });
}

/** Cosine similarity of two vectors (each normalised with `max(‖x‖, 1e-12)`, as `util.cos_sim`), in float64. */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`cosineSimilarity: vectors of length ${a.length} and ${b.length}`);
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    normA += a[i]! * a[i]!;
    normB += b[i]! * b[i]!;
  }
  return dot / (Math.max(Math.sqrt(normA), 1e-12) * Math.max(Math.sqrt(normB), 1e-12));
}
