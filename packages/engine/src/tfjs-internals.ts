/**
 * The parts of TensorFlow.js 4.22 that kotune uses beyond its documented API, checked when a backend starts so
 * that a tfjs upgrade which drops one fails at once with a sentence naming it, not later with a wrong number or
 * an `undefined is not a function` deep inside a training step.
 *
 *   engine.state.gradientDepth   native-kernels.ts: whether a backward is being recorded (the fused encoder
 *                                layer has no gradient)
 *   engine.state.activeTape      @kotune/xlm-roberta: gradient checkpointing puts the outer tape back after
 *                                its inner `tf.grads`
 *   wasm backend: typedArrayFromHeap, makeOutput, incRef, disposeData
 *                                the native kernels, the shared Identity and the row gather read and write
 *                                tensors in place on the wasm heap (wasm-kernels.ts, wasm-batch-matmul.ts)
 *   wasm kernels Identity, GatherV2 and BatchMatMul
 *                                wasm-kernels.ts falls back to them; wasm-batch-matmul.ts calls BatchMatMul
 *   cpu backend: readSync (the tensor's own array), makeTensorInfo, firstUse
 *                                the native kernels work on the arrays in place; backend.ts silences its banner
 */
import * as tf from '@tensorflow/tfjs';

/** What is missing for backend `name` (`wasm`, `cpu`; the others use only the public API), one phrase each. */
export function tfjsInternalsProblems(name: string): string[] {
  const problems: string[] = [];
  const state = (tf.engine() as unknown as { state?: Record<string, unknown> }).state;
  if (typeof state?.gradientDepth !== 'number') problems.push('engine.state.gradientDepth');
  const backend = tf.findBackend(name) as unknown as Record<string, unknown> | null;
  const methods = (names: string[]) => {
    for (const method of names) if (typeof backend?.[method] !== 'function') problems.push(`the ${name} backend's ${method}()`);
  };
  if (name === 'wasm') {
    methods(['typedArrayFromHeap', 'makeOutput', 'incRef', 'disposeData']);
    for (const kernel of ['Identity', 'GatherV2', 'BatchMatMul'])
      if (!tf.getKernel(kernel, 'wasm')) problems.push(`the wasm kernel ${kernel}`);
  } else if (name === 'cpu') {
    methods(['readSync', 'makeTensorInfo']);
    if (typeof backend?.firstUse !== 'boolean') problems.push("the cpu backend's firstUse flag");
    if (problems.length === 0) {
      // readSync must hand out the tensor's own array (the native kernels write outputs into it).
      const t = tf.tensor1d([1, 2]);
      const read = (backend!.readSync as (id: tf.DataId) => unknown).bind(backend);
      const [first, second] = [read(t.dataId), read(t.dataId)];
      if (first !== second) problems.push("the cpu backend's readSync returning the stored array itself");
      t.dispose();
    }
  }
  if (problems.length === 0) {
    // The tape exists only while a gradient is being recorded (checked last: it runs a kernel on the backend).
    let tapeSeen = false;
    const x = tf.scalar(1);
    const dx = tf.grad((x: tf.Tensor) => {
      tapeSeen = Array.isArray(state?.activeTape);
      return tf.mul(x, x);
    })(x);
    tf.dispose([x, dx]); // (inside a tf.tidy, tf.grad leaves one tensor behind)
    if (!tapeSeen) problems.push('engine.state.activeTape');
  }
  return problems;
}

/** Throws, naming what is missing and the versions kotune is built for, when `tfjsInternalsProblems` finds anything. */
export function checkTfjsInternals(name: string): void {
  const problems = tfjsInternalsProblems(name);
  if (problems.length === 0) return;
  throw new Error(
    `kotune relies on TensorFlow.js 4.22 internals that @tensorflow/tfjs-core ${tf.version_core} lacks: ${problems.join(', ')}. ` +
      'Install the versions kotune depends on (@tensorflow/tfjs 4.22.0, @tensorflow/tfjs-backend-wasm 4.22.0)',
  );
}
