export * as tf from '@tensorflow/tfjs';
export {
  initBackend,
  activeBackend,
  ensureBackend,
  installedNativeBackends,
  parseBackendName,
  backendFromArgv,
  BACKEND_NAMES,
  DEFAULT_BACKENDS,
} from './backend.ts';
export type { BackendInfo, BackendName, InitOptions } from './backend.ts';
export { linear, matMul, withWeightCache } from './matmul.ts';
export {
  encoderParameterCount,
  fitsWasm,
  formatEstimate,
  inferenceMemory,
  trainingMemory,
  WASM_MEMORY_BYTES,
  WASM_PLANNED_BYTES,
} from './memory-plan.ts';
export type { EncoderShape, ForwardShape, MemoryEstimate, TrainingWorkload } from './memory-plan.ts';
export { l2Normalize } from './normalize.ts';
export { dropout, dropoutMask, gelu, layerNorm, mix32, scaledMaskedSoftmax } from './fused.ts';
export {
  addInto,
  nativeAdamW,
  nativeEmbeddingGrad,
  nativeEncoderLayer,
  nativeEncoderLayerTrain,
  nativeSquaredNorm,
} from './native-kernels.ts';
export type { EncoderLayerWeights } from './native-kernels.ts';
export type { EncoderDropoutMasks } from '@kotune/native';
