/**
 * A cross-encoder reranker: `XLMRobertaForSequenceClassification` with its tokenizer, scoring (query,
 * passage) pairs as FlagEmbedding's `FlagReranker.compute_score` does, and saved as a Hugging Face folder.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '@kotune/engine';
import { XLMRTokenizer } from '@kotune/tokenizer';
import { loadStateDict, writeSafetensors } from '@kotune/weights';
import { sequenceClassificationParameters, tensorsToWrite } from './checkpoint.ts';
import {
  configToJsonText,
  loadConfig,
  numLabels,
  withOverrides,
  type ConfigOverrides,
  type XLMRobertaConfig,
} from './configuration-xlm-roberta.ts';
import { writeModelFolder } from './folder.ts';
import {
  classifierParameterSpecs,
  encoderParameterSpecs,
  initParameters,
  XLMRobertaForSequenceClassification,
  type ForwardOptions,
} from './modeling-xlm-roberta.ts';
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
import { mapSortedBatches } from './sorted-batches.ts';
import type { TrainableModel } from './trainable.ts';

export interface ScoreOptions {
  /** Sigmoid of the logits (FlagEmbedding `normalize=True`); default false: raw logits. */
  normalize?: boolean;
  /** Pairs per forward pass (default 32). */
  batchSize?: number;
  /** Length of a whole pair, special tokens included (default 512, capped at the model's positions). */
  maxLength?: number;
}

const DEFAULT_MAX_LENGTH = 512;

export class Reranker implements TrainableModel {
  readonly kind = 'reranker';
  readonly config: XLMRobertaConfig;
  readonly tokenizer: XLMRTokenizer;
  readonly model: XLMRobertaForSequenceClassification;
  private readonly params: Map<string, tf.Variable>;

  private constructor(config: XLMRobertaConfig, tokenizer: XLMRTokenizer, params: Map<string, tf.Variable>) {
    this.config = config;
    this.tokenizer = tokenizer;
    this.params = params;
    this.model = new XLMRobertaForSequenceClassification(config, params);
  }

  /**
   * Loads a folder or hub id: `config.json`, the weights (`roberta.`-prefixed or bare; a checkpoint without a
   * classifier gets a fresh one) and the tokenizer files of the same folder.
   */
  static async load(pathOrId: string, options: LoadOptions = {}): Promise<Reranker> {
    const log = options.log === undefined ? stderrLog : options.log;
    const folder = await resolveFolder(pathOrId, options);
    const config = withOverrides(loadConfig(folder), configOverrides(options));
    await ensureBackendFor(config, log);
    const tokenizer = XLMRTokenizer.fromFolder(folder);
    checkTokenizer(tokenizer, config, folder);
    const params = sequenceClassificationParameters(await loadStateDict(folder), config, folder, { seed: options.seed ?? 42, log });
    return new Reranker(config, tokenizer, params);
  }

  /**
   * A freshly initialised reranker (transformers' `_init_weights`) with the tokenizer of `tokenizerDir`:
   * `config` holds config.json keys (missing ones take transformers' defaults, the vocabulary the tokenizer's).
   */
  static random(
    config: Record<string, unknown> | XLMRobertaConfig,
    tokenizerDir: string,
    seed: number,
    overrides: ConfigOverrides = {},
  ): Reranker {
    const tokenizer = XLMRTokenizer.fromFolder(tokenizerDir);
    const full = freshConfig(config, tokenizer, configOverrides(overrides));
    const specs = [
      ...encoderParameterSpecs(full, { addPoolingLayer: false }).map((s) => ({ ...s, name: `roberta.${s.name}` })),
      ...classifierParameterSpecs(full),
    ];
    return new Reranker(full, tokenizer, initParameters(specs, full, seed));
  }

  get maxSequenceLength(): number {
    return this.model.roberta.maxSequenceLength;
  }

  /** Logits `[B]` (one label) or `[B, num_labels]`; `inputIds` / `attentionMask` are `[B, S]`. */
  forward(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor {
    return tf.tidy(() => {
      const logits = this.model.forward(inputIds, attentionMask, options);
      return logits.shape[1] === 1 ? tf.reshape(logits, [logits.shape[0]]) : logits;
    });
  }

  /** The pair length `score` cuts to when not told: FlagReranker's 512, capped at the model's positions. */
  defaultMaxLength(): number {
    return Math.min(DEFAULT_MAX_LENGTH, this.model.roberta.maxSequenceLength);
  }

  /** One score per pair, in input order: the logit, or its sigmoid with `normalize`. */
  async score(pairs: [string, string][], options: ScoreOptions = {}): Promise<number[]> {
    if (numLabels(this.config) !== 1) throw new Error(`score: the model has ${numLabels(this.config)} labels; a reranker has one`);
    const limit = this.model.roberta.maxSequenceLength;
    const maxLength = options.maxLength ?? this.defaultMaxLength();
    if (!Number.isInteger(maxLength) || maxLength > limit) {
      throw new Error(`score: maxLength ${maxLength} must be an integer ≤ ${limit}, the longest input the model's position table allows`);
    }
    const { inputIds } = this.tokenizer.encodeRerankerPairs(pairs, { maxLength, padding: false });
    const logits = await mapSortedBatches(inputIds, options.batchSize ?? DEFAULT_BATCH_SIZE, this.tokenizer.padId, (ids, mask) =>
      this.forward(ids, mask),
    );
    return logits.map(([logit]) => (options.normalize ? 1 / (1 + Math.exp(-logit!)) : logit!));
  }

  /** The trainable variables under their checkpoint names (`roberta.*`, `classifier.*`). */
  variables(): Map<string, tf.Variable> {
    return new Map(this.params);
  }

  /**
   * Writes `config.json`, `model.safetensors` and the tokenizer files (transformers' `save_pretrained` layout),
   * `model_max_length` capped at the model's positions.
   */
  async save(dir: string): Promise<void> {
    await writeModelFolder(dir, async (staging) => {
      writeFileSync(join(staging, 'config.json'), configToJsonText(this.config, 'XLMRobertaForSequenceClassification'));
      await writeSafetensors(join(staging, 'model.safetensors'), tensorsToWrite(this.params), { format: 'pt' });
      writeTokenizerFiles(this.tokenizer, staging, this.model.roberta.maxSequenceLength);
    });
  }

  dispose(): void {
    for (const value of this.params.values()) value.dispose();
  }
}
