/**
 * Pointwise cross-encoder loss: `torch.nn.BCEWithLogitsLoss()` (mean) of each pair's logit against
 * its 0/1 (or soft) label, as sentence-transformers' `CrossEncoder` trains with `num_labels=1`
 * (`BinaryCrossEntropyLoss`):
 *
 *   loss = mean_i [ −y_i log σ(x_i) − (1 − y_i) log(1 − σ(x_i)) ]
 *        = mean_i [ (1 − y_i) x_i − log σ(x_i) ]
 *
 * The second form with the stable `−log σ(x) = softplus(−x)` never overflows `exp`, keeps `log σ(x)`
 * precise for large |x|, and its autodiff gradient is exactly `σ(x) − y` everywhere (x = 0 included,
 * where the `max(x, 0) − xy + log(1 + e^−|x|)` form would differentiate `max` and `|x|` at their kinks).
 */
import { tf } from '@kotune/engine';

export function binaryCrossEntropyLoss(logits: tf.Tensor, labels: tf.Tensor | readonly number[]): tf.Scalar {
  return tf.tidy(() => {
    const x = logits.reshape([-1]);
    const y = (labels instanceof tf.Tensor ? labels : tf.tensor1d(labels as number[], 'float32')).reshape([-1]).cast('float32');
    if (x.size !== y.size) throw new Error(`binaryCrossEntropyLoss: ${y.size} labels for ${x.size} logits`);
    // −log σ(x) = softplus(−x); tf.logSigmoid is avoided because its gradient closes over x without
    // saving it, so it fails once a tidy has disposed x before the backward pass.
    const perPair = tf.onesLike(y).sub(y).mul(x).add(tf.softplus(x.neg()));
    return perPair.mean() as tf.Scalar;
  });
}
