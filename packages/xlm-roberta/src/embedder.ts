/**
 * A bi-encoder embedder: `XLMRobertaModel` + pooling (CLS or mean) + optional L2 normalisation, as a
 * sentence-transformers model computes `encode`, saved as a sentence-transformers folder.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { l2Normalize, tf } from '@kotune/engine';
import { XLMRTokenizer } from '@kotune/tokenizer';
import { loadStateDict, writeSafetensors } from '@kotune/weights';
import { encoderParameters, tensorsToWrite } from './checkpoint.ts';
import { configToJsonText, loadConfig, withOverrides, type ConfigOverrides, type XLMRobertaConfig } from './configuration-xlm-roberta.ts';
import { writeModelFolder } from './folder.ts';
import { encoderParameterSpecs, initParameters, XLMRobertaModel, type ForwardOptions } from './modeling-xlm-roberta.ts';
import { pool, POOLING_MODES, type PoolingMode } from './pooling.ts';
import {
  checkTokenizer,
  configOverrides,
  DEFAULT_BATCH_SIZE,
  ensureBackendFor,
  freshConfig,
  resolveFolder,
  stderrLog,
  writeTokenizerFiles,
  type LoadOptions,
} from './pretrained.ts';
import { readSentenceTransformerFolder, writeSentenceTransformerFiles } from './sentence-transformers.ts';
import { mapSortedBatches } from './sorted-batches.ts';
import type { TrainableModel } from './trainable.ts';

export interface EmbedderSettings {
  /** Default: the folder's `1_Pooling`, else CLS (FlagEmbedding's BGE default). */
  pooling?: PoolingMode;
  /** Default: whether the folder has a Normalize module, else true. */
  normalize?: boolean;
  /** Longest input, special tokens included; default: the folder's `max_seq_length`, else the model's limit. */
  maxSeqLength?: number;
  /** Named prompts saved in config_sentence_transformers.json, e.g. `{ query: 'query: ', document: 'passage: ' }`. */
  prompts?: Record<string, string>;
  /** The prompt `encode` puts before texts when given no `prefix` / `promptName` (sentence-transformers' `default_prompt_name`). */
  defaultPromptName?: string | null;
}

export interface EncodeOptions {
  /** Text put before every input (a prompt such as `query: `); default: the `promptName` prompt, else the default prompt. */
  prefix?: string;
  /** One of the embedder's `prompts` (sentence-transformers' `prompt_name`, e.g. `query`, `document`). */
  promptName?: string;
  /** Texts per forward pass (default 32). */
  batchSize?: number;
  /** Default: the embedder's setting. */
  normalize?: boolean;
  /** Default: the embedder's `maxSeqLength`. */
  maxLength?: number;
}

export class Embedder implements TrainableModel {
  readonly kind = 'embedder';
  readonly config: XLMRobertaConfig;
  readonly tokenizer: XLMRTokenizer;
  readonly model: XLMRobertaModel;
  readonly pooling: PoolingMode;
  readonly normalize: boolean;
  readonly maxSeqLength: number;
  prompts: Record<string, string>;
  defaultPromptName: string | null;
  private readonly doLowerCase: boolean;
  private readonly stConfigJson: Record<string, unknown> | null;
  private readonly params: Map<string, tf.Variable>;

  private constructor(
    config: XLMRobertaConfig,
    tokenizer: XLMRTokenizer,
    params: Map<string, tf.Variable>,
    settings: EmbedderSettings & { doLowerCase?: boolean; stConfigJson?: Record<string, unknown> | null },
  ) {
    this.config = config;
    this.tokenizer = tokenizer;
    this.params = params;
    this.model = new XLMRobertaModel(config, params);
    // The pooler is kept for the round trip but takes no part in the embedding, so it does not train.
    for (const [name, value] of params) if (name.startsWith('pooler.')) value.trainable = false;
    this.pooling = settings.pooling ?? 'cls';
    if (!POOLING_MODES.includes(this.pooling))
      throw new Error(`pooling must be one of ${POOLING_MODES.join(', ')}, got ${JSON.stringify(this.pooling)}`);
    this.normalize = settings.normalize ?? true;
    this.maxSeqLength = settings.maxSeqLength ?? Math.min(this.model.maxSequenceLength, tokenizer.modelMaxLength);
    if (!Number.isInteger(this.maxSeqLength) || this.maxSeqLength < 2 || this.maxSeqLength > this.model.maxSequenceLength) {
      throw new Error(
        `max_seq_length ${this.maxSeqLength} must be an integer in [2, ${this.model.maxSequenceLength}] (the model's positions)`,
      );
    }
    this.prompts = { ...settings.prompts };
    this.defaultPromptName = settings.defaultPromptName ?? null;
    if (this.defaultPromptName !== null && !(this.defaultPromptName in this.prompts)) {
      throw new Error(
        `default prompt name ${JSON.stringify(this.defaultPromptName)} is not one of the prompts (${Object.keys(this.prompts).join(', ') || 'none'})`,
      );
    }
    this.doLowerCase = settings.doLowerCase ?? false;
    this.stConfigJson = settings.stConfigJson ?? null;
  }

  /**
   * Loads a sentence-transformers folder of any version (pooling, normalisation, max length and prompts from its
   * files, see sentence-transformers.ts) or a plain Hugging Face folder / hub id (CLS + normalise unless
   * `options` say otherwise). A folder asking for a longer max length than the model's positions allow
   * (sentence-transformers caps it at `max_position_embeddings`, 2 more than XLM-R has) gets the positions' limit,
   * with a warning.
   */
  static async load(pathOrId: string, options: LoadOptions & EmbedderSettings = {}): Promise<Embedder> {
    const log = options.log === undefined ? stderrLog : options.log;
    const folder = await resolveFolder(pathOrId, options);
    const st = readSentenceTransformerFolder(folder);
    const modelFolder = join(folder, st?.transformerPath ?? '');
    const config = withOverrides(loadConfig(modelFolder), configOverrides(options));
    if (st?.poolingDimension != null && st.poolingDimension !== config.hiddenSize) {
      throw new Error(
        `${folder}: the Pooling module's embedding dimension ${st.poolingDimension} is not the model's hidden_size ${config.hiddenSize}`,
      );
    }
    await ensureBackendFor(config, log);
    const tokenizer = XLMRTokenizer.fromFolder(modelFolder);
    checkTokenizer(tokenizer, config, modelFolder);
    const limit = config.maxPositionEmbeddings - config.padTokenId - 1;
    // An absent model_max_length (Hugging Face's "very large integer") means the positions' limit, silently.
    let maxSeqLength =
      options.maxSeqLength ?? st?.maxSeqLength ?? (Number.isFinite(tokenizer.modelMaxLength) ? tokenizer.modelMaxLength : limit);
    if (options.maxSeqLength === undefined && maxSeqLength > limit) {
      log?.(
        `${st?.maxSeqLengthSource ?? `${join(modelFolder, 'tokenizer_config.json')} "model_max_length"`} is ${maxSeqLength}, ` +
          `but the model has positions for ${limit} tokens (max_position_embeddings ${config.maxPositionEmbeddings} − pad_token_id ${config.padTokenId} − 1); using ${limit}`,
      );
      maxSeqLength = limit;
    }
    const params = encoderParameters(await loadStateDict(modelFolder), config, modelFolder, { log });
    try {
      return new Embedder(config, tokenizer, params, {
        pooling: options.pooling ?? st?.pooling,
        normalize: options.normalize ?? st?.normalize,
        maxSeqLength,
        prompts: options.prompts ?? st?.prompts,
        defaultPromptName:
          options.defaultPromptName !== undefined || options.prompts !== undefined ? options.defaultPromptName : st?.defaultPromptName,
        doLowerCase: st?.doLowerCase,
        stConfigJson: st?.configJson,
      });
    } catch (error) {
      for (const value of params.values()) value.dispose();
      throw error;
    }
  }

  /** A freshly initialised embedder (`XLMRobertaModel` with its pooler, which stays frozen), as `Reranker.random`. */
  static random(
    config: Record<string, unknown> | XLMRobertaConfig,
    tokenizerDir: string,
    seed: number,
    settings: ConfigOverrides & EmbedderSettings = {},
  ): Embedder {
    const tokenizer = XLMRTokenizer.fromFolder(tokenizerDir);
    const full = freshConfig(config, tokenizer, configOverrides(settings));
    return new Embedder(full, tokenizer, initParameters(encoderParameterSpecs(full, { addPoolingLayer: true }), full, seed), settings);
  }

  get maxSequenceLength(): number {
    return this.model.maxSequenceLength;
  }

  /** Sentence embeddings `[B, H]` (pooled, normalised when the embedder normalises); inputs `[B, S]`. */
  forward(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, options: ForwardOptions & { normalize?: boolean } = {}): tf.Tensor2D {
    return tf.tidy(() => {
      const { lastHiddenState } = this.model.forward(inputIds, attentionMask, options);
      const pooled = pool(lastHiddenState, attentionMask, this.pooling);
      return (options.normalize ?? this.normalize) ? l2Normalize(pooled) : pooled;
    });
  }

  /** One embedding per text, in input order. */
  async encode(texts: string[], options: EncodeOptions = {}): Promise<Float32Array[]> {
    const maxLength = options.maxLength ?? this.maxSeqLength;
    if (!Number.isInteger(maxLength) || maxLength < 2 || maxLength > this.model.maxSequenceLength) {
      throw new Error(`encode: maxLength ${maxLength} must be an integer in [2, ${this.model.maxSequenceLength}] (the model's positions)`);
    }
    const inputs = this.doLowerCase ? texts.map((t) => t.toLowerCase()) : texts;
    const { inputIds } = this.tokenizer.encodeBatch(inputs, { maxLength, padding: false, prefix: this.promptFor(options) });
    const normalize = options.normalize ?? this.normalize;
    return mapSortedBatches(inputIds, options.batchSize ?? DEFAULT_BATCH_SIZE, this.tokenizer.padId, (ids, mask) =>
      this.forward(ids, mask, { normalize }),
    );
  }

  /**
   * sentence-transformers' choice: the explicit prefix, else the named prompt, else the default prompt, else
   * none. As there, `query` and `document` always exist (empty unless the folder gives them), so that a pipeline
   * can ask for them whatever the model.
   */
  private promptFor({ prefix, promptName }: EncodeOptions): string {
    if (prefix !== undefined) return prefix;
    const name = promptName ?? this.defaultPromptName;
    if (name === null) return '';
    const prompt = this.prompts[name] ?? (name === 'query' || name === 'document' ? '' : undefined);
    if (prompt === undefined)
      throw new Error(
        `encode: no prompt named ${JSON.stringify(name)}; the embedder has ${
          Object.keys(this.prompts)
            .map((p) => JSON.stringify(p))
            .join(', ') || 'none'
        }`,
      );
    return prompt;
  }

  /** The trainable variables under their checkpoint names (`XLMRobertaModel` layout; the frozen pooler excluded). */
  variables(): Map<string, tf.Variable> {
    return new Map([...this.params].filter(([, value]) => value.trainable));
  }

  /**
   * Writes a sentence-transformers folder: the `XLMRobertaModel` at the root, then Pooling and Normalize;
   * `max_seq_length` and the tokenizer's `model_max_length` within the model's positions.
   */
  async save(dir: string): Promise<void> {
    await writeModelFolder(dir, async (staging) => {
      writeFileSync(join(staging, 'config.json'), configToJsonText(this.config, 'XLMRobertaModel'));
      await writeSafetensors(join(staging, 'model.safetensors'), tensorsToWrite(this.params), { format: 'pt' });
      writeTokenizerFiles(this.tokenizer, staging, this.model.maxSequenceLength);
      writeSentenceTransformerFiles(staging, {
        pooling: this.pooling,
        normalize: this.normalize,
        maxSeqLength: this.maxSeqLength,
        doLowerCase: this.doLowerCase,
        hiddenSize: this.config.hiddenSize,
        prompts: this.prompts,
        defaultPromptName: this.defaultPromptName,
        configJson: this.stConfigJson,
      });
    });
  }

  dispose(): void {
    for (const value of this.params.values()) value.dispose();
  }
}
