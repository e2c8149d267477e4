/**
 * Loads the weights of a Hugging Face model folder as a name → tensor map, whatever the file layout.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from './safetensors.ts';
import type { LoadedTensor } from './safetensors.ts';

export async function loadStateDict(folder: string): Promise<Map<string, LoadedTensor>> {
  const single = join(folder, 'model.safetensors');
  if (existsSync(single)) return (await readSafetensors(single)).tensors;
  throw new Error(`${folder}: no model.safetensors found`);
}
