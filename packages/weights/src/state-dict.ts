/**
 * Loads the weights of a Hugging Face model folder as a name → tensor map, whatever the file layout, in the
 * order transformers prefers them: `model.safetensors`, `model.safetensors.index.json` (shards),
 * `pytorch_model.bin`, `pytorch_model.bin.index.json`. Names are returned as stored (buffers such as
 * `embeddings.position_ids` included: the model decides what to ignore).
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { readSafetensors } from './safetensors.ts';
import type { LoadedTensor } from './safetensors.ts';
import { readTorchCheckpoint } from './torch-checkpoint.ts';

type ReadWeights = (path: string) => Promise<Map<string, LoadedTensor>>;

const readSafetensorsTensors: ReadWeights = async (path) => (await readSafetensors(path)).tensors;

/** The weight files transformers looks for, best first. */
export const WEIGHT_FILES = [
  'model.safetensors',
  'model.safetensors.index.json',
  'pytorch_model.bin',
  'pytorch_model.bin.index.json',
] as const;

export async function loadStateDict(folder: string): Promise<Map<string, LoadedTensor>> {
  if (!existsSync(folder) || !statSync(folder).isDirectory())
    throw new Error(`${folder}: not a folder (expected a Hugging Face model folder)`);
  const [single, shardedSafetensors, bin, shardedBin] = WEIGHT_FILES.map((f) => join(folder, f));
  if (existsSync(single!)) return readSafetensorsTensors(single!);
  if (existsSync(shardedSafetensors!)) return loadSharded(shardedSafetensors!, readSafetensorsTensors);
  if (existsSync(bin!)) return readTorchCheckpoint(bin!);
  if (existsSync(shardedBin!)) return loadSharded(shardedBin!, readTorchCheckpoint);
  throw new Error(`${folder}: no weights found (looked for ${WEIGHT_FILES.join(', ')})`);
}

/** Reads a `*.index.json` (`{"metadata": {...}, "weight_map": {tensor: shard file}}`) and every shard it names. */
async function loadSharded(indexPath: string, readShard: ReadWeights): Promise<Map<string, LoadedTensor>> {
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (err) {
    throw new Error(`${indexPath}: not valid JSON (${(err as Error).message})`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (!weightMap || typeof weightMap !== 'object' || Array.isArray(weightMap))
    throw new Error(`${indexPath}: field "weight_map" is missing or not an object`);
  const shardOf = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || isAbsolute(shard) || normalize(shard).startsWith('..')) {
      throw new Error(`${indexPath}: weight_map["${name}"] must be a shard file name inside the folder, got ${JSON.stringify(shard)}`);
    }
    shardOf.set(name, shard);
  }
  const tensors = new Map<string, LoadedTensor>();
  for (const shard of new Set(shardOf.values())) {
    const shardPath = join(dirname(indexPath), shard);
    if (!existsSync(shardPath)) throw new Error(`${indexPath}: shard ${shard} is missing from the folder`);
    for (const [name, tensor] of await readShard(shardPath)) tensors.set(name, tensor);
  }
  for (const [name, shard] of shardOf) {
    if (!tensors.has(name)) throw new Error(`${indexPath}: weight_map puts "${name}" in ${shard}, which has no such tensor`);
  }
  return tensors;
}
