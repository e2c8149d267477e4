export { readSafetensors, readSafetensorsHeader, writeSafetensors, decodeTensorBytes, DTYPE_BYTES } from './safetensors.ts';
export type { Dtype, TensorEntry, SafetensorsHeader, LoadedTensor, TensorToWrite } from './safetensors.ts';
export { loadStateDict } from './state-dict.ts';
