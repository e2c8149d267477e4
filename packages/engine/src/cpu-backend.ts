/**
 * kotune's cpu backend: tfjs-backend-cpu's own backend instance, registered a second time under the name
 * `kotune-cpu` with a copy of its kernels, so that the kernels kotune replaces on it (native Add, Mul and RealDiv
 * for gradient-sized tensors: native-kernels.ts) apply only while kotune's backend is active. A tfjs user in the
 * same process who selects `cpu` runs tfjs's kernels, unchanged; the instance and its tensors are shared, so
 * tensors pass between the two names without a copy (as for `kotune-wasm`, wasm-kernels.ts). Its own replacement
 * here: GatherV2 along the first axis (the embedding lookups) as a copy of whole rows.
 */
import * as tf from '@tensorflow/tfjs';

/** The registry name of kotune's cpu backend (`tf.getBackend()` while it runs). */
export const KOTUNE_CPU = 'kotune-cpu';
/** Below tfjs's own backends (cpu 1, wasm and webgl 2): never the one tfjs picks for a program that picks none. */
const KOTUNE_CPU_PRIORITY = -1;

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
interface CpuData {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: tf.backend_util.BackendValues): tf.TensorInfo;
}

/**
 * `tf.gather(x, indices)` along axis 0 with no batch dimensions (nn.Embedding's lookup: word and position
 * embeddings) as one copy of each gathered row: tfjs's cpu kernel computes an index per element (~100 ns each, 0.3 s
 * of the two lookups of an XLM-R forward over 4,096 tokens, on one thread while the layers run on all). The same
 * values; any other gather, or an index out of range (its error), goes to tfjs's kernel.
 */
const GATHERED_DTYPES: readonly tf.DataType[] = ['float32', 'int32', 'bool'];

function gatherRows(own: tf.KernelConfig) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { x, indices } = args.inputs as Record<'x' | 'indices', tf.TensorInfo>;
    const { axis, batchDims } = args.attrs as { axis: number; batchDims?: number };
    const cpu = args.backend as CpuData;
    if (
      GATHERED_DTYPES.includes(x.dtype) &&
      indices.dtype === 'int32' &&
      !batchDims &&
      x.shape.length >= 1 &&
      tf.util.parseAxisParam(axis, x.shape)[0] === 0
    ) {
      const rows = x.shape[0]!;
      const ids = cpu.readSync(indices.dataId) as Int32Array;
      if (ids.every((id) => id >= 0 && id < rows)) {
        const values = cpu.readSync(x.dataId) as Float32Array;
        const width = tf.util.sizeFromShape(x.shape.slice(1));
        const out = new (values.constructor as Float32ArrayConstructor)(ids.length * width);
        ids.forEach((id, i) => out.set(values.subarray(id * width, (id + 1) * width), i * width));
        return cpu.makeTensorInfo([...indices.shape, ...x.shape.slice(1)], x.dtype, out);
      }
    }
    return (own.kernelFunc as (args: KernelArgs) => tf.TensorInfo)(args);
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
