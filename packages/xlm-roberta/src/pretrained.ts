/**
 * What `Reranker` and `Embedder` share when they come to life: resolving a folder or hub id, the config with
 * the caller's overrides, and the tokenizer checked against the model.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBackend, inferenceMemory, type BackendInfo } from '@kotune/engine';
import { resolveModelPath, type ResolveOptions } from '@kotune/hub';
import { XLMRTokenizer } from '@kotune/tokenizer';
import { MANIFEST_FILE, verifyManifest } from '@kotune/weights';
import { configFromJson, withOverrides, type ConfigOverrides, type XLMRobertaConfig } from './configuration-xlm-roberta.ts';
import type { Log } from './checkpoint.ts';
import { pythonJsonText } from './json-text.ts';

export interface LoadOptions extends ConfigOverrides, Pick<ResolveOptions, 'revision' | 'cacheDir' | 'offline' | 'hubUrl'> {
  /**
   * Warnings (ignored tensors, a freshly initialised head) and, when loading initialises the backend (nothing
   * chose one: `initBackend`'s default, wasm with the native kernels), its start-up line; default stderr, null for
   * silence.
   */
  log?: Log;
  /** Seed for a head the checkpoint lacks (a reranker loaded from a base model); default 42. */
  seed?: number;
  /**
   * Check the files against the folder's `checksums.json` (written by every kotune save) before loading;
   * default true. It reads every file once more: about 1 s per GB (2.2 s for a 560M-parameter model).
   */
  verify?: boolean;
}

export const stderrLog: Log = (line) => process.stderr.write(`${line}\n`);

/** Inputs a forward takes by default (`score`'s and `encode`'s `batchSize`). */
export const DEFAULT_BATCH_SIZE = 32;

/**
 * The backend that runs `config`'s model (`ensureBackend`): one that can hold its weights and a default batch
 * (32 inputs of up to 512 tokens, or the model's positions when fewer), so that a model too large for wasm's 4 GB
 * goes to cpu with one line saying why, before any weight is loaded.
 */
export function ensureBackendFor(config: XLMRobertaConfig, log: Log): Promise<BackendInfo> {
  const length = Math.min(512, config.maxPositionEmbeddings - config.padTokenId - 1);
  return ensureBackend(log, inferenceMemory(config, { sequences: DEFAULT_BATCH_SIZE, length }));
}

/** The local folder of `pathOrId`, its files checked against its `checksums.json` when it has one (`verify`). */
export async function resolveFolder(pathOrId: string, options: LoadOptions): Promise<string> {
  const { revision, cacheDir, offline, hubUrl } = options;
  const folder = await resolveModelPath(pathOrId, {
    revision,
    cacheDir,
    offline,
    hubUrl,
    log: options.log === undefined ? stderrLog : options.log,
  });
  if (options.verify !== false) {
    const { problems } = await verifyManifest(folder);
    if (problems.length > 0) {
      throw new Error(
        `${folder}: ${problems.join('; ')}. ${MANIFEST_FILE} records the files as kotune saved them: ` +
          `copy the folder again from where it came, or delete ${MANIFEST_FILE} to load it as it is`,
      );
    }
  }
  return folder;
}

/** The tokenizer must produce ids the model can embed, and pad with the id the position ids are counted from. */
export function checkTokenizer(tokenizer: XLMRTokenizer, config: XLMRobertaConfig, source: string): void {
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new Error(`${source}: the tokenizer has ${tokenizer.vocabSize} ids but the model's vocab_size is ${config.vocabSize}`);
  }
  if (tokenizer.padId !== config.padTokenId) {
    throw new Error(`${source}: the tokenizer pads with id ${tokenizer.padId} but the model's pad_token_id is ${config.padTokenId}`);
  }
}

/**
 * The config of a fresh model: transformers' `XLMRobertaConfig` defaults, then `json` (config.json keys,
 * e.g. `{"hidden_size": 384, "num_hidden_layers": 12}`), then `overrides`; `vocab_size` and the special ids
 * default to the tokenizer's.
 */
export function freshConfig(
  json: Record<string, unknown> | XLMRobertaConfig,
  tokenizer: XLMRTokenizer,
  overrides: ConfigOverrides,
): XLMRobertaConfig {
  const given = 'json' in json && typeof json.json === 'object' ? (json as XLMRobertaConfig).json : (json as Record<string, unknown>);
  const config = configFromJson(
    {
      vocab_size: tokenizer.vocabSize,
      pad_token_id: tokenizer.padId,
      bos_token_id: tokenizer.bosId,
      eos_token_id: tokenizer.eosId,
      model_type: 'xlm-roberta',
      ...given,
    },
    'model config',
  );
  checkTokenizer(tokenizer, config, 'model config');
  return withOverrides(config, overrides);
}

export function configOverrides(options: ConfigOverrides): ConfigOverrides {
  const { hiddenDropoutProb, attentionProbsDropoutProb, classifierDropout } = options;
  return { hiddenDropoutProb, attentionProbsDropoutProb, classifierDropout };
}

/**
 * Copies the tokenizer files into a model folder being saved, with a `model_max_length` the model can take:
 * at most `maxLength`, the positions it has (`max_position_embeddings − pad_token_id − 1`). Clients truncate
 * to `model_max_length` (transformers' `truncation=True`, sentence-transformers' default max length,
 * transformers.js); a larger value lets them build inputs whose position ids fall off the table, which crashes
 * them (transformers.js: `Gather ... idx=512` for a 512-position model told 512). A smaller value the source
 * chose is kept, and an unchanged file is copied byte for byte.
 */
export function writeTokenizerFiles(tokenizer: XLMRTokenizer, dir: string, maxLength: number): void {
  tokenizer.copyFilesTo(dir);
  const path = join(dir, 'tokenizer_config.json');
  const config = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
  const given = config.model_max_length;
  if (typeof given === 'number' && given <= maxLength) return;
  writeFileSync(path, pythonJsonText({ ...config, model_max_length: maxLength }));
}
