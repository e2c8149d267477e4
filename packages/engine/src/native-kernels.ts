/**
 * Kernels of @kotune/native for the wasm and cpu backends: the model's matrix products, GELU, dropout,
 * LayerNorm and attention softmax, and the optimizer's AdamW update and squared norms.
 *
 * Why: inside the model tfjs-backend-wasm multiplies at ~28 GFLOP/s a core (128-bit wasm SIMD, plus the
 * transposes and batch splits `matmul.ts` needs around XNNPACK), the cpu backend at ~1; the native
 * products reach ~70-100 on the same core (`pnpm bench matmul`), and products are ~80% of a training
 * step. AdamW as tensor ops is a dozen passes over every parameter, ~30 ns an element each on the cpu
 * backend (95 s a step for XLM-R base's 278M parameters); the fused update is one.
 *
 * The kernels read their operands where the backend keeps them (the wasm heap; the cpu backend's typed
 * arrays) and write their outputs there: no copies, and transposes are flags, not passes over memory.
 * Everything else stays on the backend.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { withGradient } from './custom-grad.ts';
import { loadNative, type AdamWConstants, type EncoderDims, type EncoderDropoutMasks, type NativeKernels } from '@kotune/native';
import { KOTUNE_CPU } from './cpu-backend.ts';
import { dataVersion, markRewritten } from './data-version.ts';
import { productGradients } from './product-gradients.ts';
import { KOTUNE_WASM } from './wasm-kernels.ts';

const PRODUCT = 'KotuneNativeMatMul';
const ADAMW = 'KotuneNativeAdamW';
const GELU = 'KotuneNativeGelu';
const GELU_GRAD = 'KotuneNativeGeluGrad';
const DROPOUT = 'KotuneNativeDropout';
const LAYER_NORM = 'KotuneNativeLayerNorm';
const LAYER_NORM_GRAD = 'KotuneNativeLayerNormGrad';
const SOFTMAX = 'KotuneNativeSoftmax';
const SOFTMAX_GRAD = 'KotuneNativeSoftmaxGrad';
const ENCODER_LAYER = 'KotuneNativeEncoderLayer';
const ENCODER_LAYER_TRAIN = 'KotuneNativeEncoderLayerTrain';
const ENCODER_LAYER_BACKWARD = 'KotuneNativeEncoderLayerBackward';
const EMBEDDING_GRAD = 'KotuneNativeEmbeddingGrad';
/** The backends (registry names) the kernels run on: kotune's wasm and cpu. */
const BACKENDS = [KOTUNE_WASM, KOTUNE_CPU] as const;

let native: NativeKernels | undefined;

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

/** The cpu backend keeps each tensor's values in a typed array; `readSync` returns that array itself. */
interface CpuBackend {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
  refCount(dataId: tf.DataId): number;
}

/** Float32 storage of tensors on the wasm or cpu backend: their data in place, and new outputs. */
interface Storage {
  data(t: tf.TensorInfo): Float32Array;
  /** `t`'s own float32 data, to rewrite, when no other tensor holds it (the backend's reference count is 1); else undefined. */
  soleData(t: tf.TensorInfo): Float32Array | undefined;
  output(shape: number[]): { info: tf.TensorInfo; data: () => Float32Array };
}

function storageOf(backend: unknown): Storage {
  if (tf.getBackend() === KOTUNE_WASM) {
    const wasm = backend as BackendWasm;
    // Views are taken when used, after every allocation: growing the wasm memory detaches older ones.
    return {
      data: (t) => wasm.typedArrayFromHeap(t) as Float32Array,
      soleData: (t) => (wasm.refCount(t.dataId) === 1 ? (wasm.typedArrayFromHeap(t) as Float32Array) : undefined),
      output: (shape) => {
        const info = wasm.makeOutput(shape, 'float32');
        return { info, data: () => wasm.typedArrayFromHeap(info) as Float32Array };
      },
    };
  }
  const cpu = backend as CpuBackend;
  return {
    // The cpu backend's Cast from int32 to float32 shares the int32 buffer and only retags it (no precision is
    // lost, so tfjs copies nothing): such a float32 tensor's values are an Int32Array, read here as floats (a
    // copy: the tensors kernels write in place, AdamW's moments, are made float32 by the optimizer).
    data: (t) => {
      const values = cpu.readSync(t.dataId);
      return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
    },
    soleData: (t) => {
      const values = cpu.refCount(t.dataId) === 1 ? cpu.readSync(t.dataId) : undefined;
      return values instanceof Float32Array ? values : undefined;
    },
    output: (shape) => {
      const values = new Float32Array(tf.util.sizeFromShape(shape));
      return { info: cpu.makeTensorInfo(shape, 'float32', values), data: () => values };
    },
  };
}

function productKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  const [aRows, aCols] = a.shape.slice(-2) as [number, number];
  const bShape = b.shape.slice(-2) as [number, number];
  const [m, k, n] = [transposeA ? aCols : aRows, transposeA ? aRows : aCols, transposeB ? bShape[0] : bShape[1]];
  const batchShape = a.shape.slice(0, -2);
  const storage = storageOf(backend);
  const out = storage.output([...batchShape, m, n]);
  native!.gemm(storage.data(a), storage.data(b), out.data(), tf.util.sizeFromShape(batchShape), m, n, k, transposeA, transposeB);
  return out.info;
}

/** The new parameter as a new tensor; the moments m and v are updated where they are. */
function adamwKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { p, g, m, v } = inputs as Record<'p' | 'g' | 'm' | 'v', tf.TensorInfo>;
  const storage = storageOf(backend);
  const pOut = storage.output(p.shape);
  const [mData, vData] = [storage.data(m), storage.data(v)];
  native!.adamw(storage.data(p), storage.data(g), mData, vData, pOut.data(), mData, vData, attrs as unknown as AdamWConstants);
  return pOut.info;
}

function geluKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { x } = inputs as { x: tf.TensorInfo };
  const storage = storageOf(backend);
  const y = storage.output(x.shape);
  native!.gelu(storage.data(x), y.data());
  return y.info;
}

function geluGradKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const storage = storageOf(backend);
  const dx = storage.output(x.shape);
  native!.geluGrad(storage.data(x), storage.data(dy), dx.data());
  return dx.info;
}

function dropoutKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x } = inputs as { x: tf.TensorInfo };
  const { seed, threshold, scale } = attrs as { seed: number; threshold: number; scale: number };
  const storage = storageOf(backend);
  const y = storage.output(x.shape);
  native!.dropout(storage.data(x), y.data(), seed, threshold, scale);
  return y.info;
}

function layerNormKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { x, weight, bias } = inputs as Record<'x' | 'weight' | 'bias', tf.TensorInfo>;
  const rows = x.shape.slice(0, -1);
  const storage = storageOf(backend);
  const [y, mean, rstd] = [storage.output(x.shape), storage.output(rows), storage.output(rows)];
  native!.layerNorm(
    storage.data(x),
    storage.data(weight),
    storage.data(bias),
    y.data(),
    mean.data(),
    rstd.data(),
    (attrs as { eps: number }).eps,
  );
  return [y.info, mean.info, rstd.info];
}

function layerNormGradKernel({ inputs, backend }: KernelArgs): tf.TensorInfo[] {
  const { x, weight, mean, rstd, dy } = inputs as Record<'x' | 'weight' | 'mean' | 'rstd' | 'dy', tf.TensorInfo>;
  const storage = storageOf(backend);
  const [dx, dweight, dbias] = [storage.output(x.shape), storage.output(weight.shape), storage.output(weight.shape)];
  native!.layerNormGrad(
    storage.data(x),
    storage.data(weight),
    storage.data(mean),
    storage.data(rstd),
    storage.data(dy),
    dx.data(),
    dweight.data(),
    dbias.data(),
  );
  return [dx.info, dweight.info, dbias.info];
}

function softmaxKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { scores, mask } = inputs as Record<'scores' | 'mask', tf.TensorInfo>;
  const width = scores.shape.at(-1)!;
  const rowsPerMask = tf.util.sizeFromShape(scores.shape) / tf.util.sizeFromShape(mask.shape);
  const storage = storageOf(backend);
  const probs = storage.output(scores.shape);
  native!.softmax(storage.data(scores), storage.data(mask), probs.data(), width, rowsPerMask, (attrs as { divisor: number }).divisor);
  return probs.info;
}

function softmaxGradKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { probs, dy } = inputs as Record<'probs' | 'dy', tf.TensorInfo>;
  const storage = storageOf(backend);
  const dscores = storage.output(probs.shape);
  native!.softmaxGrad(storage.data(probs), storage.data(dy), dscores.data(), probs.shape.at(-1)!, (attrs as { divisor: number }).divisor);
  return dscores.info;
}

function encoderLayerKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, mask } = inputs as Record<'x' | 'mask', tf.TensorInfo>;
  const { packed, heads, ffn, divisor, eps } = attrs as unknown as {
    packed: Float32Array;
    heads: number;
    ffn: number;
    divisor: number;
    eps: number;
  };
  const [batch, seq, hidden] = x.shape as [number, number, number];
  const storage = storageOf(backend);
  const y = storage.output(x.shape);
  native!.encoderLayer!(packed, storage.data(x), storage.data(mask), y.data(), [batch, seq, hidden, heads, ffn], divisor, eps);
  return y.info;
}

/** What the training layer's kernels take besides tensors. */
interface TrainAttrs {
  dims: EncoderDims;
  divisor: number;
  eps: number;
  dropout: EncoderDropoutMasks;
  keepState: boolean;
}

/** The 16 weights of a layer, named w0 … w15 among a kernel's inputs. */
function weightInputs(weights: readonly tf.Tensor[]): Record<string, tf.Tensor> {
  return Object.fromEntries(weights.map((w, i) => [`w${i}`, w]));
}

/** Outputs y, and the state for the backward where `keepState`. */
function encoderLayerTrainKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { x, mask } = inputs as Record<'x' | 'mask', tf.TensorInfo>;
  const weights = Array.from({ length: 16 }, (_, i) => inputs[`w${i}`] as tf.TensorInfo);
  const { dims, divisor, eps, dropout, keepState } = attrs as unknown as TrainAttrs;
  const storage = storageOf(backend);
  const y = storage.output(x.shape);
  const state = keepState ? storage.output([native!.encoderTrainStateLength!(dims)]) : undefined;
  native!.encoderLayerTrainForward!(
    weights.map((w) => storage.data(w)),
    storage.data(x),
    storage.data(mask),
    y.data(),
    state?.data() ?? null,
    dims,
    divisor,
    eps,
    dropout,
  );
  return state ? [y.info, state.info] : [y.info];
}

/** Outputs dx, then the 16 weights' gradients. */
function encoderLayerBackwardKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { x, mask, state, dy } = inputs as Record<'x' | 'mask' | 'state' | 'dy', tf.TensorInfo>;
  const weights = Array.from({ length: 16 }, (_, i) => inputs[`w${i}`] as tf.TensorInfo);
  const { dims, divisor, eps, dropout } = attrs as unknown as TrainAttrs;
  const storage = storageOf(backend);
  const dx = storage.output(x.shape);
  const grads = weights.map((w) => storage.output(w.shape));
  native!.encoderLayerBackward!(
    weights.map((w) => storage.data(w)),
    storage.data(x),
    storage.data(mask),
    storage.data(state),
    storage.data(dy),
    dx.data(),
    grads.map((g) => g.data()),
    dims,
    divisor,
    eps,
    dropout,
  );
  return [dx.info, ...grads.map((g) => g.info)];
}

function embeddingGradKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { ids, dy } = inputs as Record<'ids' | 'dy', tf.TensorInfo>;
  const { rows, padding } = attrs as { rows: number; padding: number };
  const width = dy.shape.at(-1)!;
  const storage = storageOf(backend);
  const out = storage.output([rows, width]);
  const idValues =
    tf.getBackend() === KOTUNE_WASM
      ? ((backend as BackendWasm).typedArrayFromHeap(ids) as Int32Array)
      : ((backend as CpuBackend).readSync(ids.dataId) as Int32Array);
  native!.embeddingGrad(idValues, storage.data(dy), out.data(), width, padding);
  return out.info;
}

const KERNELS: [string, unknown][] = [
  [PRODUCT, productKernel],
  [ADAMW, adamwKernel],
  [GELU, geluKernel],
  [GELU_GRAD, geluGradKernel],
  [DROPOUT, dropoutKernel],
  [LAYER_NORM, layerNormKernel],
  [LAYER_NORM_GRAD, layerNormGradKernel],
  [SOFTMAX, softmaxKernel],
  [SOFTMAX_GRAD, softmaxGradKernel],
  [ENCODER_LAYER, encoderLayerKernel],
  [ENCODER_LAYER_TRAIN, encoderLayerTrainKernel],
  [ENCODER_LAYER_BACKWARD, encoderLayerBackwardKernel],
  [EMBEDDING_GRAD, embeddingGradKernel],
];
for (const backendName of BACKENDS) {
  for (const [kernelName, kernelFunc] of KERNELS) {
    if (!tf.getKernel(kernelName, backendName)) tf.registerKernel({ kernelName, backendName, kernelFunc: kernelFunc as tf.KernelFunc });
  }
}

/**
 * The gradients of the differentiable kernels, in tf.js's gradient registry: the engine saves what each names
 * (`inputsToSave`, `outputsToSave`) when it records the kernel for a backward, and calls `gradFunc` with it,
 * as for tf.js's own kernels. One registration each, where a `tf.customGrad` would make a closure per call.
 * Each backward is one native kernel, from values the forward saved (see `fused.ts` for the formulas).
 */
const GRADIENTS: tf.GradConfig[] = [
  {
    kernelName: PRODUCT,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b], attrs) => {
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      return productGradients(dy as tf.Tensor, a!, b!, transposeA, transposeB, nativeProduct);
    },
  },
  { kernelName: GELU, inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => nativeGeluGrad(x!, dy as tf.Tensor) }) },
  {
    // The mask is made again from the seed: nothing is saved.
    kernelName: DROPOUT,
    gradFunc: (dy, _, attrs) => {
      const { seed, threshold, scale } = attrs as unknown as { seed: number; threshold: number; scale: number };
      return { x: () => nativeDropout(dy as tf.Tensor, seed, threshold, scale) };
    },
  },
  {
    // Outputs [y, mean, rstd]: the backward recomputes the normalised rows from x and the two statistics. Only
    // y reaches a loss (tf.js passes zeros for the others' gradients, which the rule does not read).
    kernelName: LAYER_NORM,
    inputsToSave: ['x', 'weight'],
    outputsToSave: [false, true, true],
    gradFunc: (dys, [x, weight, mean, rstd]) => {
      const [dx, dweight, dbias] = nativeLayerNormGrad(x!, weight!, mean!, rstd!, (dys as tf.Tensor[])[0]!);
      return { x: () => dx, weight: () => dweight, bias: () => dbias };
    },
  },
  {
    // The mask is an input, not a parameter: its gradient is zeros, asked for only if a mask depends on one.
    kernelName: SOFTMAX,
    outputsToSave: [true],
    gradFunc: (dy, [probs], attrs) => ({
      scores: () => nativeScaledMaskedSoftmaxGrad(probs!, dy as tf.Tensor, (attrs as { divisor: number }).divisor),
      mask: () => tf.zeros([probs!.shape[0]!, 1, 1, probs!.shape.at(-1)!]),
    }),
  },
];
for (const config of GRADIENTS) if (!tf.getGradient(config.kernelName)) tf.registerGradient(config);

/**
 * kotune's cpu backend's Add, Mul and RealDiv (tfjs's `cpu` keeps its own: cpu-backend.ts) on gradient-sized float32 tensors (the same shape, or one side a single
 * value) go to one native pass: its own loops take 17-30 ns an element, and tf.js adds a parameter's gradients
 * wherever it is used twice (the word embeddings of an embedder's queries and passages: 192M floats for XLM-R base),
 * GradCache and accumulation add and divide whole gradients. One float32 operation an element either way, so the
 * same bits. Smaller tensors and any other case keep the backend's kernel.
 */
const NATIVE_ELEMENTWISE_MIN = 1 << 16;

/**
 * `a op b` where b's shape, without its leading 1s, is the end of a's (a bias or an embedding row added to every
 * position: [batch, seq, H] + [1, H]), as one loop that runs through b again for each of its copies in a: tfjs's
 * broadcasting loop computes two indices an element (~80 ns; 0.24 s of an XLM-R forward over 4,096 tokens, on one
 * thread). The same float32 operation an element, so the same bits; undefined where the shapes are another case.
 */
function trailingBroadcast(op: 0 | 1 | 2, a: tf.TensorInfo, b: tf.TensorInfo, backend: unknown): tf.TensorInfo | undefined {
  const first = b.shape.findIndex((d) => d !== 1);
  const inner = b.shape.slice(first);
  if (first < 0 || b.shape.length > a.shape.length || !tf.util.arraysEqual(inner, a.shape.slice(a.shape.length - inner.length)))
    return undefined;
  const storage = storageOf(backend);
  const [x, y] = [storage.data(a), storage.data(b)];
  const out = storage.output(a.shape);
  const result = out.data();
  for (let start = 0; start < x.length; start += y.length) {
    for (let j = 0; j < y.length; j++) {
      const i = start + j;
      result[i] = op === 0 ? x[i]! + y[j]! : op === 1 ? x[i]! * y[j]! : x[i]! / y[j]!;
    }
  }
  return out.info;
}
const ELEMENTWISE_OPS = [
  ['Add', 0],
  ['Multiply', 1], // tf.mul's kernel
  ['RealDiv', 2],
] as const;
for (const [kernelName, op] of ELEMENTWISE_OPS) {
  const own = tf.getKernel(kernelName, 'cpu');
  if (!own || tf.getKernel(kernelName, KOTUNE_CPU)) continue;
  const kernelFunc = (args: KernelArgs) => {
    const { a, b } = args.inputs as Record<'a' | 'b', tf.TensorInfo>;
    const [aSize, bSize] = [tf.util.sizeFromShape(a.shape), tf.util.sizeFromShape(b.shape)];
    if (native && a.dtype === 'float32' && b.dtype === 'float32' && Math.max(aSize, bSize) >= NATIVE_ELEMENTWISE_MIN) {
      // x op s, or s op x where op commutes (IEEE add and multiply do, bit for bit).
      const [x, s] = aSize >= bSize ? [a, b] : op !== 2 ? [b, a] : [undefined, undefined];
      const sameShape = x && s && tf.util.arraysEqual(a.shape, b.shape);
      if (x && s && (sameShape || (tf.util.sizeFromShape(s.shape) === 1 && s.shape.length <= x.shape.length))) {
        const storage = storageOf(args.backend);
        const out = storage.output(x.shape);
        native.elementwise(op, storage.data(x), storage.data(s), out.data());
        return out.info;
      }
    }
    const tiled = a.dtype === 'float32' && b.dtype === 'float32' && aSize > bSize ? trailingBroadcast(op, a, b, args.backend) : undefined;
    if (tiled) return tiled;
    return (own.kernelFunc as (args: KernelArgs) => tf.TensorInfo)(args);
  };
  tf.registerKernel({ ...own, backendName: KOTUNE_CPU, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}

/**
 * Loads the kernels `choice` names (`auto`, `openblas`, `builtin`, `builtin-avx2`, `off`; default
 * `KOTUNE_NATIVE`, else `auto`) for later calls, and says which product kernel runs: `OpenBLAS 0.3.21
 * (...), 1 thread`, or why none does. A kernel asked for by name that cannot run throws.
 */
export function useNativeKernels(choice?: string): string {
  const loaded = loadNative(choice);
  native = 'kernels' in loaded ? loaded.kernels : undefined;
  return 'kernels' in loaded ? loaded.kernels.describe() : `the backend's own (native kernels: ${loaded.reason})`;
}

/** How a user sets glibc malloc's thresholds; where one is set, kotune leaves the allocator as the user has it. */
const MALLOC_SETTINGS = ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_', 'GLIBC_TUNABLES'];

/**
 * For the cpu backend, whose tensors are typed arrays that malloc allocates: glibc's malloc is told to serve large
 * blocks from its heap and keep freed ones for the next training step (@kotune/native's `keepFreedMemory`), instead of
 * mapping each anew, which the kernel then faults in and zeroes page by page. Measured (`pnpm bench scale`, XLM-R
 * base, one thread, parameters updated in place): a reranker step 9.5 → 8.4 s, an embedder step of 4,096 tokens
 * 36.1 → 28.4 s, peak RSS 8.6 → 8.7 GB. Returns the phrase for the backend's description, or undefined where nothing
 * changed (native kernels off, not glibc, or the user's own malloc settings).
 */
export function keepFreedMemory(): string | undefined {
  if (!native || MALLOC_SETTINGS.some((name) => process.env[name] !== undefined)) return undefined;
  return native.keepFreedMemory() ? 'freed memory kept for reuse (glibc malloc)' : undefined;
}

/** Whether the current backend's products, GELU, dropout, LayerNorm, softmax, AdamW updates and squared norms go to the native kernels. */
export function nativeKernelsOn(): boolean {
  return native !== undefined && (BACKENDS as readonly string[]).includes(tf.getBackend());
}

/**
 * `op(a) · op(b)` on the native kernel for float32 operands of rank 2, or rank 3 with equal batch sizes, with its
 * gradient (in the registry, above). Only while `nativeKernelsOn()`.
 */
export function nativeProduct(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean): tf.Tensor {
  return tf.engine().runKernel(PRODUCT, { a, b }, { transposeA, transposeB }) as tf.Tensor;
}

/**
 * One fused AdamW update of the variable `p` (see @kotune/native's `adamw`), or false where the native kernels are
 * off (the caller then uses tensor ops). The moments `m` and `v` are updated in place (they must hold data of their
 * own: an optimizer's state, shared with no other tensor), and so is `p` when the variable alone holds its data (no
 * reshape, clone or recorded gradient shares it): a new parameter-sized array every step (1.1 GB for XLM-R base)
 * costs the allocator's mapping and zeroing of fresh pages, measured at 1.5 s on one thread against 0.2 s for the
 * update itself. Its data version then goes up, so that what is cached from its data (packed and transposed
 * weights) is made again. Shared data is left as it is: `p` is assigned a new tensor, as tf.js ops would give it.
 */
export function nativeAdamW(p: tf.Variable, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, constants: AdamWConstants): boolean {
  if (!nativeKernelsOn()) return false;
  for (const t of [p, g, m, v]) if (t.dtype !== 'float32') throw new Error(`nativeAdamW: float32 tensors expected, got ${t.dtype}`);
  if (m.dataId === v.dataId) throw new Error('nativeAdamW: m and v share their data; each moment needs its own');
  const storage = storageOf(tf.backend());
  const parameter = storage.soleData(p);
  if (parameter) {
    const [mData, vData] = [storage.data(m), storage.data(v)];
    native!.adamw(parameter, storage.data(g), mData, vData, parameter, mData, vData, constants);
    markRewritten(p.dataId);
    return true;
  }
  const updated = tf.engine().runKernel(ADAMW, { p, g, m, v }, constants as unknown as tf.NamedAttrMap) as tf.Tensor;
  p.assign(updated);
  updated.dispose();
  return true;
}

/**
 * `sum + addend` for float32 tensors of one shape, written into `sum`'s own data where the native kernels are on and
 * no other tensor holds it (`sum` itself is then returned, its data version raised): a running sum of gradients
 * (GradCache's chunks, accumulated micro-batches) would otherwise take a fresh gradient-sized array an addition
 * (2.2 GB for XLM-R large), each page mapped and zeroed anew. Else `tf.add`'s new tensor, and `sum` is disposed.
 * One float32 addition an element either way: the same bits. The caller owns the result and keeps `addend`.
 */
export function addInto(sum: tf.Tensor, addend: tf.Tensor): tf.Tensor {
  if (nativeKernelsOn() && sum.dtype === 'float32' && addend.dtype === 'float32' && tf.util.arraysEqual(sum.shape, addend.shape)) {
    const storage = storageOf(tf.backend());
    const target = storage.soleData(sum);
    if (target) {
      native!.elementwise(0, target, storage.data(addend), target);
      markRewritten(sum.dataId);
      return sum;
    }
  }
  const total = tf.add(sum, addend);
  sum.dispose();
  return total;
}

/** GELU (`fused.ts`'s formula) on the native kernel, for a float32 tensor, with its gradient; only while `nativeKernelsOn()`. */
export function nativeGelu(x: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(GELU, { x }, {}) as tf.Tensor;
}

/** GELU's gradient `dy·(Φ(x) + x·φ(x))` on the native kernel. */
function nativeGeluGrad(x: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(GELU_GRAD, { x, dy }, {}) as tf.Tensor;
}

/**
 * `x` times the dropout mask of `seed` (kept where the element's hash ≥ `threshold`, scaled by `scale`; see
 * `fused.ts`), made on the fly, with its gradient (the same mask on `dy`); only while `nativeKernelsOn()`.
 */
export function nativeDropout(x: tf.Tensor, seed: number, threshold: number, scale: number): tf.Tensor {
  return tf.engine().runKernel(DROPOUT, { x }, { seed, threshold, scale }) as tf.Tensor;
}

/** LayerNorm over the last axis on the native kernel, with its gradient; only while `nativeKernelsOn()`. */
export function nativeLayerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  const [y, mean, rstd] = tf.engine().runKernel(LAYER_NORM, { x, weight, bias }, { eps }) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
  // A recorded backward keeps its own references to the statistics (`outputsToSave`).
  mean.dispose();
  rstd.dispose();
  return y;
}

/** LayerNorm's `[dx, dweight, dbias]` from the forward's input and its per-row statistics. */
function nativeLayerNormGrad(
  x: tf.Tensor,
  weight: tf.Tensor,
  mean: tf.Tensor,
  rstd: tf.Tensor,
  dy: tf.Tensor,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.engine().runKernel(LAYER_NORM_GRAD, { x, weight, mean, rstd, dy }, {}) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
}

/**
 * `softmax(scores / divisor + mask)` over the last axis on the native kernel, with its gradient, for scores
 * [batch, heads, q, seq] and an additive mask [batch, 1, 1, seq]; only while `nativeKernelsOn()`.
 */
export function nativeScaledMaskedSoftmax(scores: tf.Tensor, divisor: number, mask: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(SOFTMAX, { scores, mask }, { divisor }) as tf.Tensor;
}

/** Its gradient `(dy·p − Σ(dy·p)·p) / divisor` from the probabilities. */
function nativeScaledMaskedSoftmaxGrad(probs: tf.Tensor, dy: tf.Tensor, divisor: number): tf.Tensor {
  return tf.engine().runKernel(SOFTMAX_GRAD, { probs, dy }, { divisor }) as tf.Tensor;
}

/**
 * The 16 tensors of a post-LN encoder layer, in `packEncoderLayer`'s order: query weight, bias, key weight, bias,
 * value weight, bias, attention output dense weight, bias, its LayerNorm weight, bias, intermediate dense weight,
 * bias, output dense weight, bias, its LayerNorm weight, bias.
 */
export type EncoderLayerWeights = readonly tf.Tensor[];

/** A layer's weights packed for the product kernel, with the data ids (and their versions) they were packed from. */
interface PackedLayer {
  dataIds: tf.DataId[];
  versions: number[];
  kernel: string;
  packed: Float32Array;
}

/**
 * Packed layers, by the layer's query weight: packed on first use, packed again when any of the 16 tensors holds
 * new data (a new data id after `Variable.assign`, a new version after an optimizer step in place), dropped with
 * the weight.
 */
const packedLayers = new WeakMap<tf.Tensor, PackedLayer>();

function packedLayer(weights: EncoderLayerWeights, hidden: number, ffn: number): Float32Array {
  const cached = packedLayers.get(weights[0]!);
  const current = (id: tf.DataId, i: number) => id === weights[i]!.dataId && cached!.versions[i] === dataVersion(id);
  if (cached && cached.kernel === native!.kernel && cached.dataIds.every(current)) return cached.packed;
  const storage = storageOf(tf.backend());
  const packed = native!.packEncoderLayer!(
    weights.map((w) => storage.data(w)),
    hidden,
    ffn,
  );
  const dataIds = weights.map((w) => w.dataId);
  packedLayers.set(weights[0]!, { dataIds, versions: dataIds.map(dataVersion), kernel: native!.kernel, packed });
  return packed;
}

/** Whether tf.js records operations for a gradient right now (inside `tf.grads`, `minimize`, a custom gradient's forward). */
function recordingGradients(): boolean {
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth > 0;
}

/**
 * A whole post-LN encoder layer (erf GELU) for inference on the native kernels: `x` `[batch, seq, hidden]`, `mask`
 * the additive attention mask `[batch, 1, 1, seq]`, the scores divided by `√(hidden / heads)`. Undefined where it
 * cannot run: native kernels off or unsupported here, heads of more than 256 dimensions, or while gradients are
 * being recorded (it has no gradient yet); the caller then runs the layer op by op. The weights are packed once and reused while unchanged.
 */
export function nativeEncoderLayer(
  x: tf.Tensor,
  mask: tf.Tensor,
  weights: EncoderLayerWeights,
  heads: number,
  eps: number,
): tf.Tensor | undefined {
  if (!nativeKernelsOn() || !native!.encoderLayer || recordingGradients() || x.rank !== 3 || weights.length !== 16) return undefined;
  if (x.dtype !== 'float32' || mask.dtype !== 'float32' || weights.some((w) => w.dtype !== 'float32')) return undefined;
  const [batch, seq, hidden] = x.shape as [number, number, number];
  if (mask.size !== batch * seq || hidden % heads !== 0 || hidden / heads > 256 || x.size === 0) return undefined;
  const ffn = weights[10]!.shape[0]!;
  const packed = packedLayer(weights, hidden, ffn);
  return tf.engine().runKernel(ENCODER_LAYER, { x, mask }, {
    packed,
    heads,
    ffn,
    divisor: Math.sqrt(hidden / heads),
    eps,
  } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/**
 * A whole post-LN encoder layer (erf GELU) in training mode on the native kernels, with its gradient: `x`
 * `[batch, seq, hidden]`, `mask` the additive attention mask `[batch, 1, 1, seq]`, dropout with the masks
 * `dropout()` returns (called only when the layer runs here, so that the caller's seed stream moves only then).
 * The forward keeps 6·hidden + ffn floats a token for the backward (not the [heads, seq, seq] probabilities:
 * attention runs by blocks both ways, see @kotune/native's src/encoder_train.cc), or, with `recompute` (gradient
 * checkpointing), nothing but its input: the backward runs the forward again first. Gradients flow to `x` and to
 * the 16 weights. Undefined where it cannot run (native kernels off or unsupported, heads of more than 256
 * dimensions); the caller then runs the layer op by op. Its gradient is a `tf.customGrad`, not a registered one:
 * for a kernel's unused output (the kept state) tf.js would make a zero gradient the size of all the layer's
 * kept activations in every backward, and checkpointing saves other tensors than the plain step.
 */
export function nativeEncoderLayerTrain(
  x: tf.Tensor,
  mask: tf.Tensor,
  weights: EncoderLayerWeights,
  heads: number,
  eps: number,
  dropout: () => EncoderDropoutMasks,
  recompute: boolean,
): tf.Tensor | undefined {
  if (!nativeKernelsOn() || !native!.encoderLayerTrainForward || x.rank !== 3 || weights.length !== 16) return undefined;
  if (x.dtype !== 'float32' || mask.dtype !== 'float32' || weights.some((w) => w.dtype !== 'float32')) return undefined;
  const [batch, seq, hidden] = x.shape as [number, number, number];
  if (mask.size !== batch * seq || hidden % heads !== 0 || hidden / heads > 256 || x.size === 0) return undefined;
  const ffn = weights[10]!.shape[0]!;
  const attrs = (keepState: boolean) =>
    ({
      dims: [batch, seq, hidden, heads, ffn],
      divisor: Math.sqrt(hidden / heads),
      eps,
      dropout: masks,
      keepState,
    }) as unknown as tf.NamedAttrMap;
  const masks = dropout();
  const forward = (x: tf.Tensor, w: readonly tf.Tensor[], keepState: boolean) =>
    tf.engine().runKernel(ENCODER_LAYER_TRAIN, { x, mask, ...weightInputs(w) }, attrs(keepState)) as unknown as tf.Tensor[];
  return withGradient(([x, ...w], save) => {
    const [y, state] = forward(x!, w, !recompute);
    save(recompute ? [x!, mask, ...w] : [x!, mask, state!, ...w]);
    return {
      value: y!,
      gradFunc: (dy, saved) => {
        const [x, mask, ...rest] = saved;
        const [state, w] = recompute ? [forward(x!, rest, true)[1]!, rest] : [rest[0]!, rest.slice(1)];
        return tf
          .engine()
          .runKernel(ENCODER_LAYER_BACKWARD, { x: x!, mask: mask!, state, dy, ...weightInputs(w) }, attrs(false)) as unknown as tf.Tensor[];
      },
    };
  })(x, ...weights);
}

/**
 * nn.Embedding's gradient on the native kernels: a `[rows, width]` matrix, zero but for the rows of `ids` (int32, any
 * shape), into which `dy`'s rows (`[...ids.shape, width]`) are added in order; ids equal to `paddingIdx` get none
 * (PyTorch's `padding_idx`). tf.scatterND's sums, in one pass on all threads instead of a zeroing and a loop. Undefined
 * where the native kernels are off.
 */
export function nativeEmbeddingGrad(ids: tf.Tensor, dy: tf.Tensor, rows: number, paddingIdx: number | null): tf.Tensor | undefined {
  if (!nativeKernelsOn() || ids.dtype !== 'int32' || dy.dtype !== 'float32' || dy.size !== ids.size * dy.shape.at(-1)!) return undefined;
  return tf.engine().runKernel(EMBEDDING_GRAD, { ids, dy }, { rows, padding: paddingIdx ?? -1 }) as tf.Tensor;
}

/** `Σ t²` of a float32 tensor as a number, one native pass accumulated in double; undefined where the native kernels are off. */
export function nativeSquaredNorm(t: tf.Tensor): number | undefined {
  if (!nativeKernelsOn() || t.dtype !== 'float32') return undefined;
  return native!.sumOfSquares(storageOf(tf.backend()).data(t));
}
