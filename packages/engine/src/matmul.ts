import * as tf from '@tensorflow/tfjs';

/**
 * `torch.nn.functional.linear`: `x · weightᵀ + bias`, with `weight` in the checkpoint's `[out, in]` layout.
 * `x` may have any rank ≥ 2; its last dimension is `in`.
 */
export function linear(x: tf.Tensor, weight: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor {
  return tf.tidy(() => {
    const inFeatures = x.shape[x.shape.length - 1];
    const x2 = x.reshape([-1, inFeatures]) as tf.Tensor2D;
    let y: tf.Tensor = tf.matMul(x2, weight, false, true);
    if (bias) y = tf.add(y, bias);
    return y.reshape([...x.shape.slice(0, -1), weight.shape[0]]);
  });
}

/** `tf.matMul` for rank 2 and rank 3 (equal batch) operands, as attention uses it. */
export function matMul(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  return tf.matMul(a, b, transposeA, transposeB);
}
