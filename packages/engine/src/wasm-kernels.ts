/**
 * kotune's wasm backend: tfjs-backend-wasm 4.22's own backend instance, registered a second time under the name
 * `kotune-wasm` with a copy of its kernels in which two are replaced by faster equivalents of the same contract.
 * The replacements apply only while kotune's backend is active: a tfjs user in the same process who selects
 * `wasm` runs tfjs's kernels, unchanged (the instance, its heap and its tensors are shared, so tensors pass
 * between the two names without a copy).
 *
 * Identity. The engine saves every tensor a gradient needs with `keep(clone(t))`, and `clone` runs
 * Identity; the wasm kernel copies the whole buffer, where the cpu and webgl backends only add a reference
 * to the same data (tensors are immutable, so sharing is safe). On a training step that was one copy per
 * saved activation (265 copies, ≈70 ms for two e5-small layers at batch 16 × 128 tokens). The sharing form
 * is what the wasm Reshape kernel already does: one more reference on the input's data, returned under the
 * same id. Nothing in the backend writes into an existing tensor's memory (Variable.assign swaps ids), and
 * XNNPACK's per-id caches stay valid because the data behind an id never changes.
 *
 * GatherV2 along axis 0 (an embedding lookup): whole rows copied on the heap (gather-rows.ts). Any other
 * axis, batch dimension or dtype goes to the backend's own kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { checkRowIds, copyRows, gathersRows } from './gather-rows.ts';

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** The registry name of kotune's wasm backend (`tf.getBackend()` while it runs). */
export const KOTUNE_WASM = 'kotune-wasm';
/** Below tfjs's own backends (cpu 1, wasm and webgl 2): never the one tfjs picks for a program that picks none. */
const KOTUNE_WASM_PRIORITY = -1;

/** tfjs-backend-wasm's own kernel, which the replacements fall back to. */
const builtin = (name: string): tf.KernelFunc => tf.getKernel(name, 'wasm')!.kernelFunc;

function sharedIdentity(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x!;
  if (x.dtype === 'string') return builtin('Identity')(args) as tf.TensorInfo;
  (args.backend as unknown as BackendWasm).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function gatherRows(args: KernelArgs): tf.TensorInfo {
  const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const backend = args.backend as unknown as BackendWasm;
  if (!gathersRows(x, args.attrs)) return builtin('GatherV2')(args) as tf.TensorInfo;
  checkRowIds(backend.typedArrayFromHeap(indices), x.shape[0]!);
  const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
  // Views are taken after the allocation: growing the wasm memory detaches older ones.
  const rowSize = tf.util.sizeFromShape(x.shape.slice(1));
  copyRows(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(indices), rowSize, backend.typedArrayFromHeap(out));
  return out;
}

const replacements: Record<string, tf.KernelFunc> = { Identity: sharedIdentity as tf.KernelFunc, GatherV2: gatherRows as tf.KernelFunc };

/**
 * Starts tfjs-backend-wasm's backend (imported by the caller) and makes kotune's the active one: registered
 * once, with every wasm kernel (each with its setupFunc, which binds its wasm function when the backend starts)
 * and the replacements. Kernels kotune adds (`Kotune*`) are registered for `KOTUNE_WASM` where they are defined.
 */
export async function startKotuneWasm(): Promise<boolean> {
  if (!(await tf.setBackend('wasm'))) return false;
  await tf.ready();
  const instance = tf.findBackend('wasm')!;
  if (!tf.findBackendFactory(KOTUNE_WASM)) tf.registerBackend(KOTUNE_WASM, () => instance, KOTUNE_WASM_PRIORITY);
  for (const config of tf.getKernelsForBackend('wasm')) {
    if (tf.getKernel(config.kernelName, KOTUNE_WASM)) continue;
    tf.registerKernel({ ...config, backendName: KOTUNE_WASM, kernelFunc: replacements[config.kernelName] ?? config.kernelFunc });
  }
  return tf.setBackend(KOTUNE_WASM);
}
