/**
 * `torch.nn.utils.clip_grad_norm_(parameters, max_norm)` (L2): the global norm of all gradients,
 * `total = sqrt(Σ_p ‖g_p‖²)`, and every gradient scaled by `min(1, max_norm / (total + 1e-6))`.
 * Returns the norm *before* clipping, as torch does (and as HF logs `grad_norm`).
 */
import { nativeSquaredNorm, tf } from '@kotune/engine';

export interface ClippedGradients {
  /** New tensors (the caller disposes them); the input gradients are left untouched. */
  grads: Map<string, tf.Tensor>;
  /** Global L2 norm before clipping. */
  norm: number;
  /** The factor applied: `min(1, maxNorm / (norm + 1e-6))`. */
  clipCoef: number;
}

/**
 * `sqrt(Σ ‖g‖²)` over all tensors, read back as a number. With the engine's native kernels each tensor's
 * squared norm is one pass accumulated in double, summed in double; otherwise the norm of the per-tensor
 * norms in tensor ops, as torch computes it, read back once (one sync, not one per tensor, on a GPU).
 */
export function globalNorm(grads: Iterable<tf.Tensor>): number {
  const list = [...grads];
  if (list.length === 0) return 0;
  const squares = list.map(nativeSquaredNorm);
  if (squares.every((s) => s !== undefined)) return Math.sqrt(squares.reduce((sum, s) => sum + s, 0));
  return tf.tidy(() => tf.norm(tf.stack(list.map((g) => tf.norm(g)))).dataSync()[0]!);
}

/** torch's factor `min(1, max_norm / (norm + 1e-6))`. */
export function clipCoefficient(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}

export function clipGradNorm(grads: Map<string, tf.Tensor>, maxNorm: number): ClippedGradients {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: max norm must be > 0 (got ${maxNorm})`);
  const norm = globalNorm(grads.values());
  if (!Number.isFinite(norm)) throw new Error(`clipGradNorm: the gradient norm is ${norm} (a loss or gradient overflowed)`);
  const clipCoef = clipCoefficient(norm, maxNorm);
  const clipped = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) clipped.set(name, clipCoef === 1 ? g.clone() : tf.tidy(() => g.mul(clipCoef)));
  return { grads: clipped, norm, clipCoef };
}
