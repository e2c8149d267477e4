import * as tf from '@tensorflow/tfjs';

/**
 * `torch.nn.functional.normalize(x, p=2, dim=-1)`: `x / max(‖x‖₂, 1e-12)`. Shared by the embedder's pooling
 * and the embedding losses so both normalise exactly as PyTorch does.
 */
export function l2Normalize<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', -1, true), 1e-12)) as T);
}
