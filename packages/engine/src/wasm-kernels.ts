/**
 * Two tfjs-backend-wasm 4.22 kernels replaced by faster equivalents of the same contract.
 *
 * Identity. The engine saves every tensor a gradient needs with `keep(clone(t))`, and `clone` runs
 * Identity; the wasm kernel copies the whole buffer, where the cpu and webgl backends only add a reference
 * to the same data (tensors are immutable, so sharing is safe). On a training step that was one copy per
 * saved activation (265 copies, ≈70 ms for two e5-small layers at batch 16 × 128 tokens). The sharing form
 * is what the wasm Reshape kernel already does: one more reference on the input's data, returned under the
 * same id. Nothing in the backend writes into an existing tensor's memory (Variable.assign swaps ids), and
 * XNNPACK's per-id caches stay valid because the data behind an id never changes.
 *
 * GatherV2 along axis 0 (an embedding lookup). The wasm kernel walks element by element (≈28 ms for 2048
 * rows of a [32000, 384] table); copying whole rows on the heap takes well under a millisecond. Any other
 * axis, batch dimension or dtype goes to the backend's own kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

type KernelArgs = Parameters<tf.KernelFunc>[0];

const builtins = new Map<string, tf.KernelFunc>();

function sharedIdentity(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x!;
  if (x.dtype === 'string') return builtins.get('Identity')!(args) as tf.TensorInfo;
  (args.backend as unknown as BackendWasm).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function gatherRows(args: KernelArgs): tf.TensorInfo {
  const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
  const backend = args.backend as unknown as BackendWasm;
  if (tf.util.parseAxisParam(axis, x.shape)[0] !== 0 || batchDims !== 0 || (x.dtype !== 'float32' && x.dtype !== 'int32') || x.shape.length === 0) {
    return builtins.get('GatherV2')!(args) as tf.TensorInfo;
  }
  const ids = backend.typedArrayFromHeap(indices);
  const rows = x.shape[0]!;
  for (const id of ids) if (!(id >= 0 && id < rows)) throw new Error(`GatherV2: the index value ${id} is not in [0, ${rows - 1}]`);
  const rowSize = tf.util.sizeFromShape(x.shape.slice(1));
  const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
  // Views are taken after the allocation: growing the wasm memory detaches older ones.
  const table = backend.typedArrayFromHeap(x);
  const outValues = backend.typedArrayFromHeap(out);
  const idValues = backend.typedArrayFromHeap(indices);
  for (let i = 0; i < idValues.length; i++) {
    const row = idValues[i]! * rowSize;
    outValues.set(table.subarray(row, row + rowSize), i * rowSize);
  }
  return out;
}

const replacements: Record<string, tf.KernelFunc> = { Identity: sharedIdentity as tf.KernelFunc, GatherV2: gatherRows as tf.KernelFunc };

/**
 * Installs the replacements; call after `@tensorflow/tfjs-backend-wasm` has registered its kernels and
 * before the wasm backend starts. Calling it again does nothing.
 */
export function registerWasmKernels(): void {
  for (const [name, kernelFunc] of Object.entries(replacements)) {
    const builtin = tf.getKernel(name, 'wasm');
    if (!builtin || builtin.kernelFunc === kernelFunc) continue;
    builtins.set(name, builtin.kernelFunc);
    tf.unregisterKernel(name, 'wasm');
    // The builtin's setupFunc binds its wasm function when the backend starts; the fallback needs it.
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc, setupFunc: builtin.setupFunc });
  }
}
