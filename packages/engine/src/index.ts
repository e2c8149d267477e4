export * as tf from '@tensorflow/tfjs';
export { initBackend, activeBackend, parseBackendName, backendFromArgv, BACKEND_NAMES } from './backend.ts';
export type { BackendInfo, BackendName, InitOptions } from './backend.ts';
export { linear, matMul, withWeightCache } from './matmul.ts';
export { l2Normalize } from './normalize.ts';
export { dropout, gelu, layerNorm, mix32, scaledMaskedSoftmax } from './fused.ts';
export { nativeAdamW, nativeEncoderLayer, nativeSquaredNorm } from './native-kernels.ts';
export type { EncoderLayerWeights } from './native-kernels.ts';
