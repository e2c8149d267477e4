/**
 * The model's products on the native GEMM of @kotune/native-gemm, for the wasm and cpu backends.
 *
 * Why: inside the model tfjs-backend-wasm multiplies at ~28 GFLOP/s a core (128-bit wasm SIMD, plus
 * the transposes and batch splits `matmul.ts` needs around XNNPACK), the cpu backend at ~1; the native
 * kernels reach ~70-100 on the same core (`pnpm bench matmul`). Products are ~80% of a training step.
 *
 * The kernel reads its operands where the backend keeps them (the wasm heap; the cpu backend's typed
 * arrays) and writes its output there: no copies, and transposes are flags, not passes over memory.
 * Elementwise work, softmax, LayerNorm and everything else stay on the backend.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { loadNativeGemm, type NativeGemm } from '@kotune/native-gemm';

const KERNEL_NAME = 'KotuneNativeMatMul';
const BACKENDS = ['wasm', 'cpu'] as const;

let native: NativeGemm | undefined;

interface ProductShape { batch: number; m: number; n: number; k: number; shape: number[] }

function productShape(a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): ProductShape {
  const rank = a.shape.length;
  const [aRows, aCols] = a.shape.slice(-2) as [number, number];
  const [bRows, bCols] = b.shape.slice(-2) as [number, number];
  const batchShape = a.shape.slice(0, -2);
  return {
    batch: tf.util.sizeFromShape(batchShape),
    m: transposeA ? aCols : aRows,
    k: transposeA ? aRows : aCols,
    n: transposeB ? bRows : bCols,
    shape: [...batchShape, transposeA ? aCols : aRows, transposeB ? bRows : bCols].slice(-rank),
  };
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

function wasmProduct({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const wasm = backend as BackendWasm;
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  const { batch, m, n, k, shape } = productShape(a, b, transposeA, transposeB);
  const out = wasm.makeOutput(shape, 'float32');
  // Views are taken after the allocation: growing the wasm memory detaches older ones.
  native!.gemm(wasm.typedArrayFromHeap(a) as Float32Array, wasm.typedArrayFromHeap(b) as Float32Array, wasm.typedArrayFromHeap(out) as Float32Array, batch, m, n, k, transposeA, transposeB);
  return out;
}

/** The cpu backend keeps each tensor's values in a typed array; `readSync` returns that array itself. */
interface CpuBackend { readSync(dataId: tf.DataId): tf.backend_util.BackendValues; makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo }

function cpuProduct({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const cpu = backend as CpuBackend;
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  const { batch, m, n, k, shape } = productShape(a, b, transposeA, transposeB);
  const values = new Float32Array(batch * m * n);
  native!.gemm(cpu.readSync(a.dataId) as Float32Array, cpu.readSync(b.dataId) as Float32Array, values, batch, m, n, k, transposeA, transposeB);
  return cpu.makeTensorInfo(shape, 'float32', values);
}

for (const [backendName, kernelFunc] of [['wasm', wasmProduct], ['cpu', cpuProduct]] as const) {
  if (!tf.getKernel(KERNEL_NAME, backendName)) tf.registerKernel({ kernelName: KERNEL_NAME, backendName, kernelFunc: kernelFunc as tf.KernelFunc });
}

/**
 * Loads the kernel `choice` names (`auto`, `openblas`, `builtin`, `off`; default `KOTUNE_GEMM`, else
 * `auto`) for the products of later calls, and says which runs: `OpenBLAS 0.3.21 (...), 1 thread`, or
 * why none does. A kernel asked for by name that cannot run throws.
 */
export function useNativeProducts(choice?: string): string {
  const loaded = loadNativeGemm(choice);
  native = 'gemm' in loaded ? loaded.gemm : undefined;
  return 'gemm' in loaded ? loaded.gemm.describe() : `the backend's own (native GEMM: ${loaded.reason})`;
}

/** Whether products on the current backend go to the native GEMM. */
export function nativeProductsOn(): boolean {
  return native !== undefined && (BACKENDS as readonly string[]).includes(tf.getBackend());
}

/** Threads for the native GEMM (OpenBLAS; the built-in kernel runs on one). */
export function setProductThreads(threads: number): void {
  if (!native) throw new Error('setProductThreads: no native GEMM is loaded');
  native.setThreads(threads);
}

/**
 * `op(a) · op(b)` on the native GEMM for float32 operands of rank 2, or rank 3 with equal batch sizes;
 * no gradient of its own (`matmul.ts` wraps it).
 */
export function nativeProduct(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean): tf.Tensor {
  return tf.engine().runKernel(KERNEL_NAME, { a, b }, { transposeA, transposeB }) as tf.Tensor;
}
