/**
 * A batched matrix product for the wasm backend that runs each batch entry through XNNPACK.
 *
 * Why: tfjs-backend-wasm 4.22 sends a BatchMatMul to XNNPACK's fully-connected operator only when
 * the batch is 1 and neither operand is transposed; anything else (attention's [B·heads, S, d]
 * products) falls to a naive C++ loop at ≈1.2 GFLOP/s. Splitting the batch with tf ops does not
 * help: the wasm Slice kernel copies the whole input to JavaScript for every slice and Gather
 * costs ~0.6 ms per call, so a loop of slices is slower than the naive loop.
 *
 * This kernel therefore does the split itself, on the wasm heap, through the public methods of
 * `BackendWasm` (`makeOutput`, `typedArrayFromHeap`, `disposeData`): it copies entry i of each
 * operand into a scratch matrix, calls the registered 2-D BatchMatMul kernel (the XNNPACK path),
 * and copies the product into row block i of the output. Nothing in node_modules is changed.
 *
 * XNNPACK caches one packed operator per right-hand tensor id and frees it when that id is
 * disposed, so each entry's right-hand matrix is a fresh tensor that is disposed right after use:
 * reusing one scratch id would silently multiply by the first entry's packed weights.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { KOTUNE_WASM } from './wasm-kernels.ts';

const KERNEL_NAME = 'KotuneBatchMatMulByEntry';

function batchMatMulByEntry(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const [batch, m, k] = a.shape as [number, number, number];
  const n = b.shape[2]!;
  const matMul2D = tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc;
  const out = backend.makeOutput([batch, m, n], 'float32');
  const aEntry = backend.makeOutput([m, k], 'float32');
  try {
    for (let i = 0; i < batch; i++) {
      const bEntry = backend.makeOutput([k, n], 'float32');
      try {
        // Views are taken after every allocation: growing the wasm memory detaches older ones.
        backend.typedArrayFromHeap(aEntry).set(backend.typedArrayFromHeap(a).subarray(i * m * k, (i + 1) * m * k));
        backend.typedArrayFromHeap(bEntry).set(backend.typedArrayFromHeap(b).subarray(i * k * n, (i + 1) * k * n));
        const product = matMul2D({
          inputs: { a: aEntry, b: bEntry },
          backend: backend as unknown as tf.KernelBackend,
          attrs: { transposeA: false, transposeB: false },
        }) as tf.TensorInfo;
        backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(product), i * m * n);
        backend.disposeData(product.dataId);
      } finally {
        backend.disposeData(bEntry.dataId);
      }
    }
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  } finally {
    backend.disposeData(aEntry.dataId);
  }
  return out;
}

if (!tf.getKernel(KERNEL_NAME, KOTUNE_WASM)) {
  tf.registerKernel({ kernelName: KERNEL_NAME, backendName: KOTUNE_WASM, kernelFunc: batchMatMulByEntry as tf.KernelFunc });
}

/**
 * `a[i] · b[i]` for every i, with `a: [batch, m, k]`, `b: [batch, k, n]` float32 (no transposes,
 * no broadcasting). Only for kotune's wasm backend; it has no gradient of its own (callers wrap it in
 * `tf.customGrad`).
 */
export function wasmBatchMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (a.dtype !== 'float32' || b.dtype !== 'float32')
    throw new Error(`wasmBatchMatMul: float32 operands expected, got ${a.dtype} and ${b.dtype}`);
  if (a.shape[0] !== b.shape[0] || a.shape[2] !== b.shape[1]) {
    throw new Error(`wasmBatchMatMul: shapes [${a.shape}] and [${b.shape}] do not multiply as [batch, m, k] · [batch, k, n]`);
  }
  return tf.engine().runKernel(KERNEL_NAME, { a, b }, {}) as tf.Tensor3D;
}
