import * as tf from '@tensorflow/tfjs';

export type GradientRule = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];

/**
 * `tf.customGrad` with typed arguments: `f(inputs, save)` returns the value and its gradient rule.
 * Tensors the rule needs go through `save` (the engine keeps them until the backward pass is done).
 * The rule runs in a tidy of its own: tf.js calls it outside any per-node tidy, so its intermediates (a
 * LayerNorm backward makes about eight activation-sized ones) would otherwise live until the whole backward ends.
 */
export function withGradient(
  f: (inputs: tf.Tensor[], save: (tensors: tf.Tensor[]) => void) => { value: tf.Tensor; gradFunc: GradientRule },
): (...inputs: tf.Tensor[]) => tf.Tensor {
  const custom = tf.customGrad((...args) => {
    const save = args.pop() as (tensors: tf.Tensor[]) => void;
    const { value, gradFunc } = f(args as tf.Tensor[], save);
    return { value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => gradFunc(dy, saved)) };
  });
  return (...inputs) => custom(...inputs);
}
