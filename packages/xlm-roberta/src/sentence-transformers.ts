/**
 * The sentence-transformers files of an embedder folder: `modules.json` (Transformer → Pooling →
 * Normalize), `sentence_bert_config.json`, `1_Pooling/config.json`, `config_sentence_transformers.json`.
 * Only what this library computes is accepted: CLS or mean pooling, optional Normalize; any other module or
 * pooling mode is an error naming the file.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pythonJsonText } from './json-text.ts';
import type { PoolingMode } from './pooling.ts';

export interface SentenceTransformerSettings {
  /** Folder of the Transformer module, relative to the model folder ('' = the folder itself). */
  transformerPath: string;
  pooling: PoolingMode;
  normalize: boolean;
  /** `max_seq_length` of sentence_bert_config.json, when given. */
  maxSeqLength: number | null;
  doLowerCase: boolean;
  /** Named prompts (`{"query": "query: "}`), from config_sentence_transformers.json. */
  prompts: Record<string, string>;
  /** The parsed config_sentence_transformers.json, so that a save keeps its other keys. */
  configJson: Record<string, unknown> | null;
}

const MODULE = 'sentence_transformers.models.';
const POOLING_FLAGS: Record<string, PoolingMode | null> = {
  pooling_mode_cls_token: 'cls',
  pooling_mode_mean_tokens: 'mean',
  pooling_mode_max_tokens: null,
  pooling_mode_mean_sqrt_len_tokens: null,
  pooling_mode_weightedmean_tokens: null,
  pooling_mode_lasttoken: null,
};

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `not valid JSON (${(error as Error).message})`;
    throw new Error(`${path}: ${reason}`);
  }
}

/** The settings of a sentence-transformers folder, or null when `dir` has no modules.json. */
export function readSentenceTransformerFolder(dir: string): SentenceTransformerSettings | null {
  const modulesPath = join(dir, 'modules.json');
  if (!existsSync(modulesPath)) return null;
  const modules = readJson(modulesPath) as unknown;
  if (!Array.isArray(modules)) throw new Error(`${modulesPath}: expected a list of modules`);
  let transformerPath: string | null = null;
  let pooling: PoolingMode | null = null;
  let normalize = false;
  modules.forEach((module: { type?: unknown; path?: unknown }, index) => {
    const type = String(module?.type ?? '');
    const path = typeof module?.path === 'string' ? module.path : '';
    const expectedOrder = ['Transformer', 'Pooling', 'Normalize'];
    const kind = type.startsWith(MODULE) ? type.slice(MODULE.length) : type;
    if (!expectedOrder.includes(kind) || expectedOrder.indexOf(kind) !== index) {
      throw new Error(`${modulesPath}: module ${index} is ${JSON.stringify(type)}; supported: Transformer, then Pooling, then optionally Normalize`);
    }
    if (kind === 'Transformer') transformerPath = path;
    if (kind === 'Pooling') pooling = readPooling(join(dir, path, 'config.json'));
    if (kind === 'Normalize') normalize = true;
  });
  if (transformerPath === null || pooling === null) throw new Error(`${modulesPath}: needs a Transformer and a Pooling module`);

  const bertConfigPath = join(dir, transformerPath, 'sentence_bert_config.json');
  const bertConfig = existsSync(bertConfigPath) ? readJson(bertConfigPath) : {};
  const maxSeqLength = bertConfig.max_seq_length ?? null;
  if (maxSeqLength !== null && (!Number.isInteger(maxSeqLength) || (maxSeqLength as number) < 2)) {
    throw new Error(`${bertConfigPath}: "max_seq_length" must be an integer ≥ 2, got ${JSON.stringify(maxSeqLength)}`);
  }
  const configPath = join(dir, 'config_sentence_transformers.json');
  const configJson = existsSync(configPath) ? readJson(configPath) : null;
  const prompts = (configJson?.prompts ?? {}) as Record<string, unknown>;
  if (typeof prompts !== 'object' || Array.isArray(prompts) || Object.values(prompts).some((p) => typeof p !== 'string')) {
    throw new Error(`${configPath}: "prompts" must map names to strings`);
  }
  return {
    transformerPath, pooling, normalize, maxSeqLength: maxSeqLength as number | null,
    doLowerCase: bertConfig.do_lower_case === true, prompts: prompts as Record<string, string>, configJson,
  };
}

function readPooling(path: string): PoolingMode {
  const config = readJson(path);
  const modes = Object.entries(POOLING_FLAGS).filter(([flag]) => config[flag] === true);
  if (modes.length !== 1 || modes[0]![1] === null) {
    throw new Error(`${path}: pooling ${modes.map(([flag]) => flag).join(' + ') || '(none)'} is not supported; use exactly one of pooling_mode_cls_token, pooling_mode_mean_tokens`);
  }
  const mode = modes[0]![1];
  if (mode === 'mean' && config.include_prompt === false) {
    throw new Error(`${path}: "include_prompt": false (prompt tokens left out of mean pooling) is not supported`);
  }
  return mode;
}

/** Writes the sentence-transformers files for a Transformer at the folder's root. */
export function writeSentenceTransformerFiles(
  dir: string,
  settings: { pooling: PoolingMode; normalize: boolean; maxSeqLength: number; doLowerCase: boolean; hiddenSize: number; prompts: Record<string, string>; configJson: Record<string, unknown> | null },
): void {
  const modules = [
    { idx: 0, name: '0', path: '', type: `${MODULE}Transformer` },
    { idx: 1, name: '1', path: '1_Pooling', type: `${MODULE}Pooling` },
    ...(settings.normalize ? [{ idx: 2, name: '2', path: '2_Normalize', type: `${MODULE}Normalize` }] : []),
  ];
  writeFileSync(join(dir, 'modules.json'), pythonJsonText(modules));
  writeFileSync(join(dir, 'sentence_bert_config.json'), pythonJsonText({ max_seq_length: settings.maxSeqLength, do_lower_case: settings.doLowerCase }));
  // Key order as sentence-transformers writes it; keys of a loaded file are kept in their place.
  const stConfig: Record<string, unknown> = {
    __version__: { sentence_transformers: '3.0.1' }, prompts: {}, default_prompt_name: null, similarity_fn_name: 'cosine', ...settings.configJson,
  };
  stConfig.prompts = settings.prompts;
  writeFileSync(join(dir, 'config_sentence_transformers.json'), pythonJsonText(stConfig));
  mkdirSync(join(dir, '1_Pooling'));
  const pooling: Record<string, unknown> = { word_embedding_dimension: settings.hiddenSize };
  for (const [flag, mode] of Object.entries(POOLING_FLAGS)) pooling[flag] = mode !== null && mode === settings.pooling;
  pooling.include_prompt = true;
  writeFileSync(join(dir, '1_Pooling', 'config.json'), pythonJsonText(pooling));
  if (settings.normalize) mkdirSync(join(dir, '2_Normalize'));
}
