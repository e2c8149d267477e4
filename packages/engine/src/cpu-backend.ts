/**
 * kotune's cpu backend: tfjs-backend-cpu's own backend instance, registered a second time under the name
 * `kotune-cpu` with a copy of its kernels, so that the kernels kotune replaces on it (native Add, Mul and RealDiv
 * for gradient-sized tensors: native-kernels.ts) apply only while kotune's backend is active. A tfjs user in the
 * same process who selects `cpu` runs tfjs's kernels, unchanged; the instance and its tensors are shared, so
 * tensors pass between the two names without a copy (as for `kotune-wasm`, wasm-kernels.ts). Its own replacement
 * here: GatherV2 along the first axis (the embedding lookups) as a copy of whole rows (gather-rows.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { checkRowIds, copyRows, gathersRows } from './gather-rows.ts';

/** The registry name of kotune's cpu backend (`tf.getBackend()` while it runs). */
export const KOTUNE_CPU = 'kotune-cpu';
/** Below tfjs's own backends (cpu 1, wasm and webgl 2): never the one tfjs picks for a program that picks none. */
const KOTUNE_CPU_PRIORITY = -1;

type KernelArgs = Parameters<tf.KernelFunc>[0];
interface CpuData {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: tf.backend_util.BackendValues): tf.TensorInfo;
}

/** GatherV2 of whole rows as row copies (gather-rows.ts); any other gather goes to tfjs's kernel. */
function gatherRows(own: tf.KernelConfig) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { x, indices } = args.inputs as Record<'x' | 'indices', tf.TensorInfo>;
    if (!gathersRows(x, args.attrs)) return own.kernelFunc(args) as tf.TensorInfo;
    const cpu = args.backend as unknown as CpuData;
    const ids = cpu.readSync(indices.dataId) as Int32Array;
    checkRowIds(ids, x.shape[0]!);
    const table = cpu.readSync(x.dataId) as Float32Array | Int32Array;
    const rowSize = tf.util.sizeFromShape(x.shape.slice(1));
    const out = x.dtype === 'int32' ? new Int32Array(ids.length * rowSize) : new Float32Array(ids.length * rowSize);
    copyRows(table, ids, rowSize, out);
    return cpu.makeTensorInfo([...indices.shape, ...x.shape.slice(1)], x.dtype, out);
  };
}

const ownGather = tf.getKernel('GatherV2', 'cpu');
if (ownGather && !tf.getKernel('GatherV2', KOTUNE_CPU))
  tf.registerKernel({ ...ownGather, backendName: KOTUNE_CPU, kernelFunc: gatherRows(ownGather) as unknown as tf.KernelFunc });

/**
 * Starts tfjs's cpu backend and makes kotune's the active one: registered once, with every cpu kernel that kotune
 * has not registered for it already (the `Kotune*` kernels and the replacements are registered where defined).
 */
export async function startKotuneCpu(): Promise<boolean> {
  if (!(await tf.setBackend('cpu'))) return false;
  await tf.ready();
  const instance = tf.findBackend('cpu')!;
  if (!tf.findBackendFactory(KOTUNE_CPU)) tf.registerBackend(KOTUNE_CPU, () => instance, KOTUNE_CPU_PRIORITY);
  for (const config of tf.getKernelsForBackend('cpu')) {
    if (!tf.getKernel(config.kernelName, KOTUNE_CPU)) tf.registerKernel({ ...config, backendName: KOTUNE_CPU });
  }
  return tf.setBackend(KOTUNE_CPU);
}
