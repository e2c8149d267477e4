export { readSafetensors, readSafetensorsHeader, writeSafetensors, decodeTensorBytes, DTYPE_BYTES } from './safetensors.ts';
export type { Dtype, TensorEntry, SafetensorsHeader, LoadedTensor, TensorToWrite } from './safetensors.ts';
export { readTorchCheckpoint } from './torch-checkpoint.ts';
export { loadStateDict, WEIGHT_FILES } from './state-dict.ts';
export { MANIFEST_FILE, readManifest, sha256File, updateManifest, verifyManifest, writeManifest } from './manifest.ts';
export type { Manifest, ManifestCheck, ManifestEntry } from './manifest.ts';
