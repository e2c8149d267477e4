/**
 * Matrix products for the model, with forward and backward passes on the fast kernels.
 *
 * With the native GEMM (`native-kernels.ts`, on the wasm and cpu backends) every product, transposed
 * or batched, is one call to it. Without it, on tfjs-backend-wasm only a plain product (no transpose
 * flag, batch 1) reaches XNNPACK (≈17-40 GFLOP/s on one core); a transpose flag or a batch sends it
 * to a naive loop (≈1.2 GFLOP/s), and autodiff's gradient of `tf.matMul` uses exactly those forms. So
 * `product` then makes the transposes explicit (memory copies) before a plain product, and batched
 * products go through `wasmBatchMatMul` (one XNNPACK call per batch entry). Both functions here are
 * `tf.customGrad`s whose backward is written with `product`; the native product's gradient is in tf.js's
 * registry (`native-kernels.ts`), so there a product is the kernel alone. `bench/matmul.bench.ts` measures the gain.
 * Values and gradients equal `tf.matMul`'s up to float32 summation order.
 */
import * as tf from '@tensorflow/tfjs';
import { withGradient } from './custom-grad.ts';
import { dataVersion } from './data-version.ts';
import { nativeKernelsOn, nativeProduct } from './native-kernels.ts';
import { productGradients } from './product-gradients.ts';
import { wasmBatchMatMul } from './wasm-batch-matmul.ts';
import { KOTUNE_WASM } from './wasm-kernels.ts';

/**
 * `torch.nn.functional.linear`: `x · weightᵀ + bias`, with `weight` in the checkpoint's `[out, in]` layout.
 * `x` may have any rank ≥ 2; its last dimension is `in`. Under `withWeightCache`, calls share their
 * copies of `weight`.
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
 * A weight's copies for `linear` under `withWeightCache`, made from the data `dataId` names at `version`: `wᵀ`
 * for the forward, and the backward's detached copy of `w` (see `linearNoBias`) once a backward needs it.
 */
interface CachedWeight {
  dataId: tf.DataId;
  version: number;
  transposed: tf.Tensor;
  copy?: tf.Tensor;
}

/** The running `withWeightCache`'s copies, their bytes, and the budget they stay within. */
let weightCache: { entries: Map<tf.Tensor, CachedWeight>; bytes: number; maxBytes: number } | undefined;
/** How many `withWeightCache` calls are running (async ones may interleave); the last one out empties the cache. */
let weightCacheUsers = 0;

/**
 * Default budget of `withWeightCache`'s copies: all of an e5-small's Linear weights (81 MiB) with their
 * backward copies, four fifths of an XLM-R base's (324 MiB), a fifth of a large one's (1.1 GiB), whose
 * 2.1 GiB of weights leave no room for a full second set, packed twice, in the 4 GiB wasm heap.
 */
const WEIGHT_CACHE_BYTES = 256 * 2 ** 20;

/**
 * Runs `fn` with `linear` reusing its copies of each weight (`wᵀ` for the forward, a detached `w`
 * for the backward) across calls, as long as the weight's data is unchanged (`Variable.assign` gives
 * it a new data id, which makes new copies). On wasm this also keeps XNNPACK's packed weights, cached
 * per right-operand data id, across calls: without it every call copies the weight and packs it again
 * (a strided pass over all of it), 4-5% of a Linear's forward at 2048 rows and 14-15% at 512
 * (`bench/weight-cache.bench.ts`).
 *
 * For inference over many batches, and for the micro-batches of one optimizer step (accumulation,
 * GradCache); results are the same as without it. With the native GEMM there is nothing to cache (it
 * takes `wᵀ` as a flag and packs per call) and `fn` just runs. Copies are made, first come first served, until
 * they hold `maxBytes` (XNNPACK's packed ones take as much again); weights past that are copied per
 * call as without the cache. They are disposed when `fn` returns, or settles if it returns a promise;
 * nested and interleaved calls share one cache (the outermost call's budget), emptied when the last
 * of them ends.
 */
export function withWeightCache<T>(fn: () => T, options: { maxBytes?: number } = {}): T {
  weightCacheUsers += 1;
  weightCache ??= { entries: new Map(), bytes: 0, maxBytes: options.maxBytes ?? WEIGHT_CACHE_BYTES };
  let result: T;
  try {
    result = fn();
  } catch (err) {
    releaseWeightCache();
    throw err;
  }
  if (result instanceof Promise) return result.finally(releaseWeightCache) as T;
  releaseWeightCache();
  return result;
}

function releaseWeightCache(): void {
  weightCacheUsers -= 1;
  if (weightCacheUsers > 0 || !weightCache) return;
  for (const entry of weightCache.entries.values()) {
    entry.transposed.dispose();
    entry.copy?.dispose();
  }
  weightCache = undefined;
}

/** `t`, kept out of the caller's `tf.tidy` (the cache decides when it goes) and counted in the budget. */
function keepInCache(t: tf.Tensor): tf.Tensor {
  weightCache!.bytes += t.size * 4;
  return tf.keep(t);
}

/** Whether a copy of `w` fits in the running cache's budget. */
function fitsInCache(w: tf.Tensor): boolean {
  return weightCache !== undefined && weightCache.bytes + w.size * 4 <= weightCache.maxBytes;
}

/** `w`'s cache entry, made or renewed for its current data; undefined outside `withWeightCache` or past its budget. */
function cachedWeight(w: tf.Tensor): CachedWeight | undefined {
  if (!weightCache) return undefined;
  const entry = weightCache.entries.get(w);
  if (entry?.dataId === w.dataId && entry.version === dataVersion(w.dataId)) return entry;
  if (entry) {
    for (const t of [entry.transposed, entry.copy]) {
      if (t) weightCache.bytes -= t.size * 4;
      t?.dispose();
    }
    weightCache.entries.delete(w);
  }
  if (!fitsInCache(w)) return undefined;
  const renewed = { dataId: w.dataId, version: dataVersion(w.dataId), transposed: keepInCache(transposeLastTwo(w)) };
  weightCache.entries.set(w, renewed);
  return renewed;
}

/**
 * The backward's copy of `w` (`savedW`, the tensor the forward saved: same data, other object): the
 * cached one while the forward's entry is live (its data unchanged, its `withWeightCache` not over)
 * and the budget allows, else a fresh one.
 */
function backwardWeight(entry: CachedWeight | undefined, savedW: tf.Tensor): tf.Tensor {
  if (!entry || entry.transposed.isDisposed) return detachedCopy(savedW);
  if (!entry.copy && fitsInCache(savedW)) entry.copy = keepInCache(detachedCopy(savedW));
  return entry.copy ?? detachedCopy(savedW);
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
    throw new Error(
      `matMul: inner shapes (${innerA}) and (${innerB}) of [${a.shape}] and [${b.shape}] with transposeA=${transposeA}, transposeB=${transposeB} do not match`,
    );
  }
  const productWithGrad = nativeKernelsOn()
    ? (a: tf.Tensor, b: tf.Tensor) => nativeProduct(a, b, transposeA, transposeB)
    : matMulWithGrad[Number(transposeA) * 2 + Number(transposeB)]!;
  if (a.rank <= 3) return productWithGrad(a, b);
  return tf.tidy(() => {
    const batchShape = a.shape.slice(0, -2);
    const a3 = a.reshape([-1, ...a.shape.slice(-2)]);
    const b3 = b.reshape([-1, ...b.shape.slice(-2)]);
    const y = productWithGrad(a3, b3);
    return y.reshape([...batchShape, ...y.shape.slice(-2)]);
  });
}

/** `op(a) · op(b)` for rank-2 or rank-3 operands of equal batch size, on the backend's fastest kernel for it. */
function product(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  if (nativeKernelsOn()) return nativeProduct(a, b, transposeA, transposeB);
  if (transposeA && transposeB) return transposeLastTwo(product(b, a)); // aᵀ·bᵀ = (b·a)ᵀ
  const lhs = transposeA ? transposeLastTwo(a) : a;
  const rhs = transposeB ? transposeLastTwo(b) : b;
  if (lhs.rank === 3 && tf.getBackend() === KOTUNE_WASM) return wasmBatchMatMul(lhs as tf.Tensor3D, rhs as tf.Tensor3D);
  return tf.matMul(lhs as tf.Tensor3D, rhs as tf.Tensor3D);
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
 * Without the native product: one custom-gradient function per (transposeA, transposeB), indexed
 * `2·transposeA + transposeB`, its gradients (`productGradients`) written with `product`.
 */
const matMulWithGrad = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
].map(([transposeA, transposeB]) =>
  withGradient(([a, b], save) => {
    save([a!, b!]);
    return {
      value: product(a!, b!, transposeA!, transposeB!),
      gradFunc: (dy, [a, b]) => {
        const gradients = productGradients(dy, a!, b!, transposeA!, transposeB!, product);
        return [gradients.a(), gradients.b()];
      },
    };
  }),
);

/**
 * `w` in a buffer of its own. Saved tensors share their data with the original (the engine's wasm
 * Identity does not copy), so the copy is made here, where a new data id is the point. `· 1` keeps
 * every bit, −0 and NaN included.
 */
function detachedCopy(w: tf.Tensor): tf.Tensor {
  return tf.mul(w, 1);
}

/**
 * `x·wᵀ` for x `[M, in]`, w `[out, in]`: dx = dy·w, dw = dyᵀ·x. The native GEMM packs nothing across calls
 * and takes `wᵀ` as a flag: the product kernel alone, its gradient from the registry. Without it, dx multiplies
 * by a copy of the weight under a new id (`detachedCopy`), not by the weight's own data: XNNPACK keeps
 * a packed copy of a right operand until its data is disposed, which for a frozen weight would be the
 * whole run; the copy is disposed when the gradient computation ends, or with `withWeightCache`'s
 * when it ends.
 */
const linearNoBias = (x: tf.Tensor, w: tf.Tensor): tf.Tensor =>
  nativeKernelsOn() ? nativeProduct(x, w, false, true) : linearNoBiasOps(x, w);
const linearNoBiasOps = withGradient(([x, w], save) => {
  save([x!, w!]);
  const cached = cachedWeight(w!);
  return {
    value: product(x!, cached?.transposed ?? transposeLastTwo(w!)),
    gradFunc: (dy, [x, w]) => [product(dy, backwardWeight(cached, w!)), product(transposeLastTwo(dy), x!)],
  };
});

/**
 * `x·wᵀ + bias`; as `linearNoBias`, and dbias = Σ_rows dy. Without the native GEMM it is summed along
 * the rows of the dyᵀ that dw needs anyway: wasm's Sum over axis 0 transposes internally in one slow
 * pass (49 ms against 2 ms for [2048, 1536]). With it, dbias is the product 1ᵀ·dy: this composite keeps its
 * own gradient because `tf.add`'s would be that slow Sum (the cpu backend's transposes in JavaScript too).
 */
const linearWithBias = withGradient(([x, w, bias], save) => {
  save([x!, w!]);
  if (nativeKernelsOn()) {
    return {
      value: tf.add(product(x!, w!, false, true), bias!),
      gradFunc: (dy, [x, w]) => [product(dy, w!), product(dy, x!, true, false), product(tf.ones([1, dy.shape[0]!]), dy).reshape([-1])],
    };
  }
  const cached = cachedWeight(w!);
  return {
    value: tf.add(product(x!, cached?.transposed ?? transposeLastTwo(w!)), bias!),
    gradFunc: (dy, [x, w]) => {
      const dyT = transposeLastTwo(dy);
      return [product(dy, backwardWeight(cached, w!)), product(dyT, x!), tf.sum(dyT, 1)];
    },
  };
});
