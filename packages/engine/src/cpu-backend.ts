/**
 * kotune's cpu backend: tfjs-backend-cpu's own backend instance, registered a second time under the name
 * `kotune-cpu` with a copy of its kernels, so that the kernels kotune replaces on it (native Add, Mul and RealDiv
 * for gradient-sized tensors: native-kernels.ts) apply only while kotune's backend is active. A tfjs user in the
 * same process who selects `cpu` runs tfjs's kernels, unchanged; the instance and its tensors are shared, so
 * tensors pass between the two names without a copy (as for `kotune-wasm`, wasm-kernels.ts).
 */
import * as tf from '@tensorflow/tfjs';

/** The registry name of kotune's cpu backend (`tf.getBackend()` while it runs). */
export const KOTUNE_CPU = 'kotune-cpu';
/** Below tfjs's own backends (cpu 1, wasm and webgl 2): never the one tfjs picks for a program that picks none. */
const KOTUNE_CPU_PRIORITY = -1;

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
