import * as tf from '@tensorflow/tfjs';

export type GradientRule = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];

/**
 * `tf.customGrad` with typed arguments: `f(inputs, save)` returns the value and its gradient rule.
 * Tensors the rule needs go through `save` (the engine keeps them until the backward pass is done).
 */
export function withGradient(
  f: (inputs: tf.Tensor[], save: (tensors: tf.Tensor[]) => void) => { value: tf.Tensor; gradFunc: GradientRule },
): (...inputs: tf.Tensor[]) => tf.Tensor {
  const custom = tf.customGrad((...args) => {
    const save = args.pop() as (tensors: tf.Tensor[]) => void;
    return f(args as tf.Tensor[], save);
  });
  return (...inputs) => custom(...inputs);
}
