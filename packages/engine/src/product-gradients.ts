import type * as tf from '@tensorflow/tfjs';

/** `op(a) · op(b)`, `op` a transpose where its flag says. */
export type Product = (a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean) => tf.Tensor;

/**
 * The gradients of `y = A·B` with `A = op(a)`, `B = op(b)`: `dA = dy·Bᵀ`, `dB = Aᵀ·dy`, and `da`, `db` are those
 * transposed back where the operand was, each one `product` with flags. Each is computed only when called, so a
 * constant operand costs nothing. Used by the native product's registered gradient and by `matmul.ts`'s
 * custom-gradient products alike.
 */
export function productGradients(
  dy: tf.Tensor,
  a: tf.Tensor,
  b: tf.Tensor,
  transposeA: boolean,
  transposeB: boolean,
  product: Product,
): { a: () => tf.Tensor; b: () => tf.Tensor } {
  if (!transposeA && !transposeB) return { a: () => product(dy, b, false, true), b: () => product(a, dy, true, false) }; // da = dy·bᵀ, db = aᵀ·dy
  if (!transposeA) return { a: () => product(dy, b, false, false), b: () => product(dy, a, true, false) }; // y = a·bᵀ: da = dy·b, db = dyᵀ·a
  if (!transposeB) return { a: () => product(b, dy, false, true), b: () => product(a, dy, false, false) }; // y = aᵀ·b: da = b·dyᵀ, db = a·dy
  return { a: () => product(b, dy, true, true), b: () => product(dy, a, true, true) }; // y = aᵀ·bᵀ: da = bᵀ·dyᵀ, db = dyᵀ·aᵀ
}
