/**
 * The two cross-entropies every ranking loss here reduces to, on top of the numerically stable
 * `log_softmax(x) = x − max(x) − log Σ exp(x − max(x))` (`tf.logSoftmax`), so that scores of
 * magnitude ~50 (cosine / 0.02) neither overflow `exp` nor lose the small terms.
 */
import { tf } from '@kotune/engine';

/**
 * `torch.nn.functional.cross_entropy(logits, targets)` with mean reduction:
 * `−mean_i log_softmax(logits_i)[targets_i]`.
 */
export function crossEntropy(logits: tf.Tensor2D, targets: readonly number[]): tf.Scalar {
  const [rows, classes] = logits.shape;
  if (targets.length !== rows) throw new Error(`crossEntropy: ${targets.length} targets for ${rows} rows of logits [${logits.shape}]`);
  for (const t of targets) {
    if (!Number.isInteger(t) || t < 0 || t >= classes)
      throw new Error(`crossEntropy: target ${t} outside 0..${classes - 1} for logits [${logits.shape}]`);
  }
  return tf.tidy(() => {
    // Built here rather than with tf.oneHot: tfjs-backend-wasm 4.22 fills a float32 oneHot with int32 bits.
    const mask = new Float32Array(rows * classes);
    targets.forEach((t, i) => (mask[i * classes + t] = 1));
    const picked = tf.tensor2d(mask, [rows, classes]);
    return tf.logSoftmax(logits).mul(picked).sum(1).mean().neg() as tf.Scalar;
  });
}

/**
 * Cross-entropy against a probability distribution per row (FlagEmbedding's `kl_div` distillation):
 * `−mean_i Σ_j targetProbs_ij · log_softmax(logits)_ij`. It differs from KL(targets ‖ softmax(logits))
 * by the targets' entropy, a constant, so the gradient is the same.
 */
export function softCrossEntropy(logits: tf.Tensor2D, targetProbs: tf.Tensor2D): tf.Scalar {
  if (logits.shape[0] !== targetProbs.shape[0] || logits.shape[1] !== targetProbs.shape[1]) {
    throw new Error(`softCrossEntropy: logits [${logits.shape}] and target probabilities [${targetProbs.shape}] differ in shape`);
  }
  return tf.tidy(() => tf.logSoftmax(logits).mul(targetProbs).sum(1).mean().neg() as tf.Scalar);
}

/** `arange(rows) * step`: the target column of each query when its positive sits at `i·step`. */
export function diagonalTargets(rows: number, step = 1): number[] {
  return Array.from({ length: rows }, (_, i) => i * step);
}

/** Reads scores given as nested arrays or a tensor as a float `[rows, cols]` tensor (a new one the caller owns). */
export function asMatrix(values: tf.Tensor | readonly (readonly number[])[] | readonly number[], rows: number, what: string): tf.Tensor2D {
  return tf.tidy(() => {
    const t = values instanceof tf.Tensor ? values : tf.tensor(values as number[][] | number[], undefined, 'float32');
    if (t.size === 0 || t.size % rows !== 0) throw new Error(`${what}: ${t.shape.join('×')} values cannot be split into ${rows} rows`);
    return t.reshape([rows, t.size / rows]).cast('float32') as tf.Tensor2D;
  });
}
