/**
 * Matrix products for the model, with forward and backward passes on the fast kernels.
 *
 * On tfjs-backend-wasm only a plain product (no transpose flag, batch 1) reaches XNNPACK
 * (≈17-40 GFLOP/s on one core); a transpose flag or a batch sends it to a naive loop (≈1.2
 * GFLOP/s), and autodiff's gradient of `tf.matMul` uses exactly those transposed forms. So both
 * functions here are `tf.customGrad`s whose forward and backward are written as explicit
 * transposes (memory copies) followed by plain products, and batched products go through
 * `wasmBatchMatMul` (one XNNPACK call per batch entry). `bench/matmul.bench.ts` measures the gain.
 * Values and gradients equal `tf.matMul`'s up to float32 summation order.
 */
import * as tf from '@tensorflow/tfjs';
import { withGradient } from './custom-grad.ts';
import { wasmBatchMatMul } from './wasm-batch-matmul.ts';

/**
 * `torch.nn.functional.linear`: `x · weightᵀ + bias`, with `weight` in the checkpoint's `[out, in]` layout.
 * `x` may have any rank ≥ 2; its last dimension is `in`.
 */
export function linear(x: tf.Tensor, weight: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor {
  const inFeatures = x.shape[x.shape.length - 1]!;
  if (weight.rank !== 2 || weight.shape[1] !== inFeatures) {
    throw new Error(`linear: weight [${weight.shape}] does not match input [${x.shape}] (expected [out, ${inFeatures}])`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new Error(`linear: bias [${bias.shape}] does not match weight [${weight.shape}]`);
  }
  return tf.tidy(() => {
    const x2 = x.reshape([-1, inFeatures]);
    const y = bias ? linearWithBias(x2, weight, bias) : linearNoBias(x2, weight);
    return y.reshape([...x.shape.slice(0, -1), weight.shape[0]]);
  });
}

/**
 * `tf.matMul(a, b, transposeA, transposeB)` for rank-2 operands and for rank ≥ 3 operands with
 * equal batch dimensions (attention's `q·kᵀ` and `probs·v`). Broadcast batch dimensions and mixed
 * ranks go to `tf.matMul` unchanged.
 */
export function matMul(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  const sameBatch = a.rank === b.rank && a.rank >= 2 && a.shape.slice(0, -2).every((d, i) => d === b.shape[i]);
  if (!sameBatch || a.dtype !== 'float32' || b.dtype !== 'float32') return tf.matMul(a, b, transposeA, transposeB);
  const innerA = a.shape[a.rank - (transposeA ? 2 : 1)];
  const innerB = b.shape[b.rank - (transposeB ? 1 : 2)];
  if (innerA !== innerB) {
    throw new Error(`matMul: inner shapes (${innerA}) and (${innerB}) of [${a.shape}] and [${b.shape}] with transposeA=${transposeA}, transposeB=${transposeB} do not match`);
  }
  if (a.rank <= 3) return matMulWithGrad[Number(transposeA) * 2 + Number(transposeB)]!(a, b);
  return tf.tidy(() => {
    const batchShape = a.shape.slice(0, -2);
    const a3 = a.reshape([-1, ...a.shape.slice(-2)]);
    const b3 = b.reshape([-1, ...b.shape.slice(-2)]);
    const y = matMulWithGrad[Number(transposeA) * 2 + Number(transposeB)]!(a3, b3);
    return y.reshape([...batchShape, ...y.shape.slice(-2)]);
  });
}

/** `a · b` without transpose flags, on the backend's fastest kernel for that rank. */
function product(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (a.rank === 3 && tf.getBackend() === 'wasm') return wasmBatchMatMul(a as tf.Tensor3D, b as tf.Tensor3D);
  return tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D);
}

/**
 * Swaps the last two axes. A large matrix is transposed in two passes over row blocks
 * (`[M, N] → [M/r, N, r] → [N, M/r, r]`), because the one-pass kernel writes with a stride of a
 * whole output row and runs 4-5x slower on wasm ([2048, 768]: 17 ms against 3.8 ms).
 */
function transposeLastTwo(x: tf.Tensor): tf.Tensor {
  if (x.rank === 3) return tf.transpose(x, [0, 2, 1]);
  const [m, n] = x.shape as [number, number];
  const rows = m * n >= 1 << 16 ? [32, 16, 8].find((r) => m % r === 0 && m > r) : undefined;
  if (rows === undefined) return tf.transpose(x);
  return tf.tidy(() => tf.transpose(tf.transpose(x.reshape([m / rows, rows, n]), [0, 2, 1]), [1, 0, 2]).reshape([n, m]));
}

/**
 * One custom-gradient function per (transposeA, transposeB), indexed `2·transposeA + transposeB`.
 * With `A = op(a)`, `B = op(b)`, `y = A·B`: `dA = dy·Bᵀ`, `dB = Aᵀ·dy`; each case below is that
 * rule rewritten so that every product is a plain one and the transposes are explicit.
 */
const matMulWithGrad = [
  // y = a·b; da = dy·bᵀ; db = aᵀ·dy
  withGradient(([a, b], save) => {
    save([a!, b!]);
    return {
      value: product(a!, b!),
      gradFunc: (dy, [a, b]) => [product(dy, transposeLastTwo(b!)), product(transposeLastTwo(a!), dy)],
    };
  }),
  // y = a·bᵀ; da = dy·b; db = dyᵀ·a
  withGradient(([a, b], save) => {
    save([a!, b!]);
    return {
      value: product(a!, transposeLastTwo(b!)),
      gradFunc: (dy, [a, b]) => [product(dy, b!), product(transposeLastTwo(dy), a!)],
    };
  }),
  // y = aᵀ·b; da = b·dyᵀ; db = a·dy
  withGradient(([a, b], save) => {
    save([a!, b!]);
    return {
      value: product(transposeLastTwo(a!), b!),
      gradFunc: (dy, [a, b]) => [product(b!, transposeLastTwo(dy)), product(a!, dy)],
    };
  }),
  // y = aᵀ·bᵀ = (b·a)ᵀ; da = bᵀ·dyᵀ = (dy·b)ᵀ; db = dyᵀ·aᵀ = (a·dy)ᵀ
  withGradient(([a, b], save) => {
    save([a!, b!]);
    return {
      value: transposeLastTwo(product(b!, a!)),
      gradFunc: (dy, [a, b]) => [transposeLastTwo(product(dy, b!)), transposeLastTwo(product(a!, dy))],
    };
  }),
];

/**
 * `w` in a buffer of its own. Saved tensors share their data with the original (the engine's wasm
 * Identity does not copy), so the copy is made here, where a new data id is the point. `· 1` keeps
 * every bit, −0 and NaN included.
 */
function detachedCopy(w: tf.Tensor): tf.Tensor {
  return tf.mul(w, 1);
}

/**
 * `x·wᵀ` for x `[M, in]`, w `[out, in]`: dx = dy·w, dw = dyᵀ·x. dx multiplies by a copy of the
 * weight under a new id (`detachedCopy`), not by the weight's own data: XNNPACK keeps a packed copy
 * of a right operand until its data is disposed, which for a frozen weight would be the whole run;
 * the copy is disposed when the gradient computation ends.
 */
const linearNoBias = withGradient(([x, w], save) => {
  save([x!, w!]);
  return {
    value: product(x!, transposeLastTwo(w!)),
    gradFunc: (dy, [x, w]) => [product(dy, detachedCopy(w!)), product(transposeLastTwo(dy), x!)],
  };
});

/**
 * `x·wᵀ + bias`; as `linearNoBias`, and dbias = Σ_rows dy, summed along the rows of the dyᵀ that
 * dw needs anyway: wasm's Sum over axis 0 transposes internally in one slow pass (49 ms against
 * 2 ms for [2048, 1536]).
 */
const linearWithBias = withGradient(([x, w, bias], save) => {
  save([x!, w!]);
  return {
    value: tf.add(product(x!, transposeLastTwo(w!)), bias!),
    gradFunc: (dy, [x, w]) => {
      const dyT = transposeLastTwo(dy);
      return [product(dy, detachedCopy(w!)), product(dyT, x!), tf.sum(dyT, 1)];
    },
  };
});
